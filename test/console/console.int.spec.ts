// The web console in Debian's chromium against the real API, Postgres and Redis, with simulated
// agents as nodes: what a user does, in order, in one browser tab.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import type { TestApi } from "../../apps/api/test/support";
import { PrismaService } from "../../apps/api/src/database/prisma.service";
import { converged, live, send, simNodes, startFastApi, tasksOf, until } from "../../apps/api/test/services-support";
import type { SimAgent } from "../support/sim-agent";
import { openBrowser, type TestBrowser } from "./browser";

const ROOT = resolve(__dirname, "..", "..");
const ARTIFACTS = join(ROOT, "test-results", "console");

const nav = (page: Page, name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();
const text = async (page: Page, selector: string) => (await page.locator(selector).allTextContents()).join("\n");
/** A full-page screenshot from the top (a sticky header would otherwise land mid-page). */
async function shot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
/** The running/desired cell of a service's row in the services list. */
const replicasOf = (page: Page, service: string) =>
  page.locator("tbody tr", { has: page.getByRole("link", { name: service, exact: true }) }).locator(".replicas");

describe("web console in a real browser", () => {
  let api: TestApi;
  let agents: SimAgent[] = [];
  let b: TestBrowser;
  let page: Page;
  let dataDir: string;
  /** Tokens signed in with besides the admin's, for the no-token-in-URLs check. */
  const otherTokens: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "apps", "console", "dist", "index.html"))) {
      throw new Error("the console is not built: run `npx vite build --config apps/console/vite.config.ts` (part of `npm run build`)");
    }
    // Machines created from the UI keep their stores here, not in the user's data dir.
    dataDir = mkdtempSync(join(tmpdir(), "flotilla-console-data-"));
    process.env.FLOTILLA_DATA_DIR = dataDir;
    api = await startFastApi();
    agents = await simNodes(api, 3);
    b = await openBrowser();
    page = b.page;
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await b?.close();
    await Promise.all(agents.map((a) => a.stop()));
    await api?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("refuses a bad token with the API's own message", async () => {
    await page.goto(`${api.url}/`);
    await page.getByLabel("API token").fill("flt_this-is-not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toBe("invalid API token: it is unknown or was revoked");
    expect(await page.getByRole("navigation").count()).toBe(0);
  });

  it("signs in with the admin token and shows the fleet", async () => {
    await page.getByLabel("API token").fill(api.token);
    await page.getByLabel("API token").press("Enter");
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
    await until("3 ready nodes on the overview", async () => (await text(page, ".card")).includes("3 / 3 ready"));
    await until(
      "the event stream to be live",
      async () =>
        (await page
          .getByRole("status")
          .filter({ hasText: /^live$/ })
          .count()) === 1,
    );
    // Set once; still there at the end of the scenario means nothing below reloaded the page.
    await page.evaluate(() => Object.assign(window, { noReloadMarker: 42 }));
  });

  it("creates a service and scales it with the inline input; tasks reach RUNNING live", async () => {
    await nav(page, "Services");
    await page.getByLabel("Name", { exact: true }).fill("web");
    await page.getByLabel("Image", { exact: true }).fill("busybox");
    await page.getByLabel("Replicas", { exact: true }).fill("1");
    await page.getByLabel("Command", { exact: true }).fill("httpd -f -p 80");
    // An ingress port whose traffic stays on the receiving node.
    await page.getByRole("button", { name: "Add a port" }).click();
    const port = page.getByRole("group", { name: "Port 1" });
    await port.getByLabel("Published").fill("18080");
    await port.getByLabel("Target").fill("80");
    await port.getByLabel("Traffic").selectOption("local");
    await page.getByRole("button", { name: "Create service" }).click();
    await until("web to run 1/1", async () => (await replicasOf(page, "web").textContent()) === "1/1");
    const spec = ((await (await send(api, "GET", "/api/v1/services/web")).json()) as { spec: { ports: unknown[] } }).spec;
    expect(spec.ports).toEqual([{ published: 18080, target: 80, protocol: "tcp", mode: "ingress", traffic: "local" }]);
    await page.getByText("18080:80/tcp (local traffic)").first().waitFor();

    // A bad value: the API's refusal appears next to the input, in the API's words.
    const input = page.getByLabel("Replicas of web");
    await input.fill("-1");
    await input.press("Enter");
    const refusal = (await (await send(api, "POST", "/api/v1/services/web/scale", { replicas: -1 })).json()) as { message: string };
    const alert = page.locator("td").getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toBe(refusal.message);

    await input.fill("4");
    await input.press("Enter");
    await until("web to run 4/4 in the list", async () => (await replicasOf(page, "web").textContent()) === "4/4", 30_000);
    expect(await alert.count()).toBe(0);
    const tasks = await converged(api, "web", 4);
    expect(tasks.map((t) => t.slot).sort()).toEqual([1, 2, 3, 4]);
    expect(await page.evaluate(() => (window as unknown as { noReloadMarker?: number }).noReloadMarker)).toBe(42);
  });

  it("edits node labels and drains a node from the UI; its tasks move elsewhere", async () => {
    const before = live(await tasksOf(api, "web"));
    const victim = agents.map((a) => a.opts.hostname).find((h) => before.some((t) => t.nodeHostname === h))!;
    await nav(page, "Nodes");
    await page.getByLabel(`Add a label to ${victim} (key=value)`).fill("zone=a");
    await page.getByLabel(`Add a label to ${victim} (key=value)`).press("Enter");
    await page.getByRole("button", { name: `Remove label zone from ${victim}` }).waitFor();

    await page.getByLabel(`Availability of ${victim}`).selectOption("drain");
    await until(`${victim} to show no tasks`, async () => (await page.getByLabel(`0 tasks on ${victim}`).count()) === 1, 30_000);
    const after = await converged(api, "web", 4, 30_000);
    expect(after.filter((t) => t.nodeHostname === victim)).toEqual([]);
    const nodes = (await (await api.fetch("/api/v1/nodes")).json()) as {
      hostname: string;
      availability: string;
      labels: Record<string, string>;
    }[];
    expect(nodes.find((n) => n.hostname === victim)).toMatchObject({ availability: "drain", labels: { zone: "a" } });
    expect(await page.getByLabel(`Availability of ${victim}`).inputValue()).toBe("drain");
    await shot(page, "nodes");
  });

  it("shows a manager's control-plane replica on the Nodes page", async () => {
    // The rows `ctl node promote --control-plane` leaves (test/replicas/control-plane-replica.int.spec.ts
    // installs a real one); written here for a simulated node, which has no machine to install on.
    const prisma = api.running.app.get(PrismaService);
    const host = agents[0].opts.hostname;
    const machine = await prisma.machine.create({ data: { name: host, driver: "generic", state: "READY", ip: "198.18.0.9" } });
    await prisma.node.update({ where: { hostname: host }, data: { machineId: machine.id, role: "MANAGER" } });
    await prisma.controlPlaneReplica.create({
      data: { machineId: machine.id, apiUrl: "http://198.18.0.9:8080", agentApiUrl: "http://198.18.0.9:8080", state: "running" },
    });
    try {
      await nav(page, "Overview");
      await nav(page, "Nodes");
      const replica = page.getByLabel(`Control-plane replica on ${host}`);
      await replica.waitFor();
      expect(await replica.textContent()).toBe("control plane http://198.18.0.9:8080 running");
    } finally {
      await prisma.machine.delete({ where: { id: machine.id } });
      await prisma.node.update({ where: { hostname: host }, data: { role: "WORKER" } });
    }
  });

  it("shows the service's tasks and follows its logs", async () => {
    await nav(page, "Services");
    await page.getByRole("link", { name: "web", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "web" }).waitFor();
    await until("4 RUNNING rows in the tasks table", async () => {
      const rows = page.locator("tr[data-task]");
      return (await rows.count()) === 4 && (await rows.allTextContents()).every((r) => r.includes("running"));
    });
    const log = page.getByRole("log", { name: "Logs of web" });
    await until("log lines from the tasks", async () => /web\.\d@sim-\d \| hello from /.test((await log.textContent()) ?? ""));
    const ticks = async () => ((await log.textContent()) ?? "").split("\n").filter((l) => / \| tick /.test(l)).length;
    const first = await ticks();
    await until("the logs to keep following", async () => (await ticks()) >= first + 3, 20_000);
    expect(await page.evaluate(() => (window as unknown as { noReloadMarker?: number }).noReloadMarker)).toBe(42);

    // A deep link survives a reload: the API answers it with the console, the tab keeps its session.
    await page.reload();
    await page.getByRole("heading", { level: 1, name: "web" }).waitFor();
    await until("the tasks again after the reload", async () => (await page.locator("tr[data-task]").count()) === 4);
    await shot(page, "service-detail");
  });

  it("draws the cluster map live, and saves a screenshot of it", async () => {
    await nav(page, "Cluster map");
    const tiles = page.locator(".tile[data-state=RUNNING]");
    await until("4 running tiles", async () => (await tiles.count()) === 4);
    expect(await page.locator(".node-card").count()).toBe(3);
    // Other clients scale and create: the map follows without being asked.
    expect((await send(api, "POST", "/api/v1/services/web/scale", { replicas: 5 })).status).toBe(200);
    const reservations = { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 ** 2 };
    expect(
      (await send(api, "POST", "/api/v1/services", { name: "api", image: "nginx", replicas: 3, resources: { reservations } })).status,
    ).toBe(201);
    await until("8 running tiles", async () => (await tiles.count()) === 8, 30_000);
    expect(
      await page
        .locator(".tile[data-task^='api.']")
        .evaluateAll((els) => new Set(els.map((e) => getComputedStyle(e).backgroundColor)).size),
    ).toBe(1);
    const colours = await tiles.evaluateAll((els) => new Set(els.map((e) => getComputedStyle(e).backgroundColor)).size);
    expect(colours).toBe(2);
    await until("the reservations on the meters", async () => (await text(page, ".node-card")).includes("0.5 CPU / 4 CPU"));
    await shot(page, "cluster-map");
  });

  it("updates a service from its page and rolls it back", async () => {
    await nav(page, "Services");
    await page.getByRole("link", { name: "api", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "api" }).waitFor();
    const summary = page.getByRole("region", { name: "Summary" });
    const rows = page.locator("tr[data-task]");
    // Every current task runs the given version, and the summary shows its image.
    const runs = (image: string, version: number) => async () => {
      const t = (await summary.textContent()) ?? "";
      const tasks = await rows.allTextContents();
      return (
        t.includes(`Image${image}`) &&
        t.includes(`tasks at ${version}`) &&
        tasks.length === 3 &&
        tasks.every((r) => r.includes(`v${version}`) && r.includes("running"))
      );
    };
    await page.getByLabel("Image", { exact: true }).fill("busybox");
    await page.getByRole("button", { name: "Update", exact: true }).click();
    await until("the update to reach every task", runs("busybox", 2), 45_000);
    expect(await summary.getByRole("status").textContent()).toMatch(/^(updating|completed): /);
    expect(await page.getByLabel("Image", { exact: true }).inputValue()).toBe("busybox");

    await page.getByRole("button", { name: "Roll back" }).click();
    const dialog = page.getByRole("dialog", { name: "Roll api back?" });
    await dialog.getByRole("button", { name: "Roll back" }).click();
    await until("the rollback to reach every task", runs("nginx", 3), 45_000);
    expect(await summary.getByRole("status").textContent()).toMatch(/^rollback-/);
    const svc = (await (await api.fetch("/api/v1/services/api")).json()) as { spec: { image: string } };
    expect(svc.spec.image).toBe("nginx");
  });

  it("builds the machine form from the driver's options, shows the API's refusal, and a create refused by preCreateCheck keeps nothing", async () => {
    await nav(page, "Machines");
    await page.getByLabel("Driver").selectOption("virtualbox");
    for (const option of ["virtualbox-cpu-count", "virtualbox-memory", "virtualbox-disk-size", "engine-insecure-registry"]) {
      await page.getByLabel(option, { exact: true }).waitFor();
    }
    await page.getByLabel("Name", { exact: true }).fill("vb-1");
    await page.getByLabel("virtualbox-memory", { exact: true }).fill("64");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    const refusal = (await (
      await send(api, "POST", "/api/v1/machines", { name: "vb-1", driver: "virtualbox", options: { "virtualbox-memory": 64 } })
    ).json()) as { message: string };
    const alert = page.locator("form").getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toBe(refusal.message);

    // VirtualBox is not installed here: the create is refused by its preCreateCheck, and as with
    // docker-machine nothing is kept: the row goes away by itself, the API no longer knows vb-1,
    // and the failure (with its reason) is in the event log.
    await page.getByLabel("virtualbox-memory", { exact: true }).fill("");
    await page.getByLabel("Name", { exact: true }).fill("vb-1");
    const created = page.waitForResponse((r) => r.url().endsWith("/api/v1/machines") && r.request().method() === "POST");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    expect((await created).status()).toBe(202);
    const row = page.locator("tbody tr", { has: page.getByRole("rowheader", { name: "vb-1" }) });
    await until("vb-1's refused create to leave no machine", async () => (await api.fetch("/api/v1/machines/vb-1")).status === 404, 30_000);
    await until("vb-1 to be gone from the list", async () => (await row.count()) === 0, 30_000);
    // The form says why, rather than the new row just vanishing.
    const note = page.getByRole("alert").filter({ hasText: "Machine vb-1 was not created" });
    await note.waitFor();
    expect(await note.textContent()).toBe(
      "Machine vb-1 was not created: preCreateCheck: virtualbox: VBoxManage not found on PATH: install VirtualBox 5 or later. Nothing was kept.",
    );
    await shot(page, "machines");
  });

  it("creates a service with a mount, a secret and a config from the form, and shows them on its page", async () => {
    for (const [kind, name] of [
      ["secrets", "db_pass"],
      ["configs", "app.conf"],
    ])
      expect((await send(api, "POST", `/api/v1/${kind}`, { name, data: Buffer.from("x").toString("base64") })).status).toBe(201);
    await nav(page, "Services");
    await page.getByLabel("Name", { exact: true }).fill("cache");
    await page.getByLabel("Image", { exact: true }).fill("busybox");
    // A bad line is refused in the form, naming the field, before anything is sent.
    await page.getByLabel("Mounts", { exact: true }).fill("type=tmpfs,target=/cache,size=1m");
    await page.getByRole("button", { name: "Create service" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain('mounts: unknown option "size"');
    await page
      .getByLabel("Mounts", { exact: true })
      .fill("type=tmpfs,target=/cache,tmpfs-size=1m\ntype=volume,source=data,target=/data,readonly");
    await page.getByLabel("Secrets", { exact: true }).fill("source=db_pass,mode=0400");
    await page.getByLabel("Configs", { exact: true }).fill("source=app.conf,target=/etc/app.conf");
    await page.getByRole("button", { name: "Create service" }).click();
    // The link in the form's "created" note: the services table gets one too once its live reload
    // lands, so an unscoped locator matches one or two links depending on that race.
    const created = page.getByRole("status").getByRole("link", { name: "cache", exact: true });
    await created.waitFor();
    const svc = (await (await api.fetch("/api/v1/services/cache")).json()) as {
      spec: { mounts: unknown[]; secrets: unknown[]; configs: unknown[] };
    };
    expect(svc.spec.mounts).toEqual([
      { type: "tmpfs", target: "/cache", readOnly: false, tmpfsSizeBytes: 1048576 },
      { type: "volume", source: "data", target: "/data", readOnly: true },
    ]);
    expect(svc.spec.secrets).toEqual([{ source: "db_pass", target: "/run/secrets/db_pass", uid: "0", gid: "0", mode: 0o400 }]);
    expect(svc.spec.configs).toEqual([{ source: "app.conf", target: "/etc/app.conf", uid: "0", gid: "0", mode: 0o444 }]);
    await created.click();
    const summary = page.getByRole("region", { name: "Summary" });
    await until("the summary to show the secret", async () =>
      ((await summary.textContent()) ?? "").includes("db_pass → /run/secrets/db_pass 0400 0:0"),
    );
    expect(await summary.textContent()).toContain("app.conf → /etc/app.conf 0444 0:0");
    expect(await summary.textContent()).toContain("tmpfs /cache (1.0 MiB)");
    expect((await send(api, "DELETE", "/api/v1/services/cache")).status).toBe(204);
  });

  it("fits a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const view of ["Services", "Nodes", "Cluster map", "Overview"]) {
        await nav(page, view);
        await page.getByRole("heading", { level: 1, name: view }).waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, view).toBeLessThanOrEqual(0);
        await shot(page, `phone-${view.toLowerCase().replace(/ /g, "-")}`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 });
    }
  });

  it("signs out, and ends the session when its token is revoked", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    const { token } = (await (await send(api, "POST", "/api/v1/tokens", { name: "console-test" })).json()) as { token: string };
    otherTokens.push(token);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
    expect((await send(api, "DELETE", "/api/v1/tokens/console-test")).status).toBe(204);
    // The next read the console makes (after any event) meets the revocation.
    await send(api, "POST", "/api/v1/services/web/scale", { replicas: 2 });
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toBe("Signed out: invalid API token: it is unknown or was revoked");
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it("never put a token in a URL", async () => {
    expect(b.urls.length).toBeGreaterThan(20);
    const tokens = [api.token, ...otherTokens];
    expect(b.urls.filter((u) => tokens.some((t) => u.includes(t) || u.includes(encodeURIComponent(t))))).toEqual([]);
    // Everything the page loaded came from the control plane on loopback.
    expect(b.urls.filter((u) => !u.startsWith(`${api.url}/`) && !u.startsWith("data:") && u !== "about:blank")).toEqual([]);
    expect(b.problems).toEqual([]);
  });
});

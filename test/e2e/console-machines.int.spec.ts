// The console's machine flow in Debian's chromium against a real netns machine: create it from
// the form the netns driver describes, watch the provisioning steps arrive live, copy the docker
// environment and use it, stop and start it, remove it, and find nothing left on the host.
// Traffic stays on loopback and on a bridge in 198.19.82.0/24 that this test creates.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../../apps/api/test/services-support";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { openBrowser, type TestBrowser } from "../console/browser";
import { addBridge, parseExports, removeLeftovers, run, useMachinesEnv } from "./support";
import { testBridge } from "../support/leftovers";

const repo = resolve(__dirname, "../..");
const ARTIFACTS = join(repo, "test-results", "console");
const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flcn");
const GATEWAY = "198.19.82.1";
const NAME = `web-ui-${tag}`;

/** What the page showed of the machine, recorded in the page on every DOM change. */
interface Seen {
  steps: string[];
  states: string[];
}

// Runs in the page. A step can be on screen for a few milliseconds only, shorter than any
// polling from the test, so the page itself writes down every progress text it renders.
function recordMachine(name: string): void {
  const w = window as unknown as { machineSeen?: Seen; machineObserver?: MutationObserver };
  w.machineObserver?.disconnect();
  const seen: Seen = { steps: [], states: [] };
  w.machineSeen = seen;
  const look = () => {
    for (const row of document.querySelectorAll("tbody tr")) {
      if (row.querySelector("th")?.textContent !== name) continue;
      const state = row.querySelector(".state .badge")?.textContent;
      if (state && seen.states.at(-1) !== state) seen.states.push(state);
      const step = row.querySelector(".state .progress span")?.textContent;
      if (step && seen.steps.at(-1) !== step) seen.steps.push(step);
    }
  };
  look();
  w.machineObserver = new MutationObserver(look);
  w.machineObserver.observe(document.body, { subtree: true, childList: true, characterData: true });
}

/** Whether `items` appear in `sequence` in this order (not necessarily next to each other). */
function inOrder(items: readonly string[], sequence: readonly string[]): boolean {
  let at = 0;
  for (const item of items) {
    at = sequence.indexOf(item, at) + 1;
    if (at === 0) return false;
  }
  return true;
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { machineSeen: Seen }).machineSeen);

describe.skipIf(!root)("the console's machine flow, on a real netns machine", () => {
  let base = "";
  const apiPort = 42000 + (process.pid % 8000);
  let restoreEnv: (() => void) | undefined;
  let api: TestApi;
  let b: TestBrowser;
  let page: Page;
  let ip = "";

  const row = () => page.locator("tbody tr", { has: page.getByRole("rowheader", { name: NAME, exact: true }) });
  const stateOf = async () => (await row().locator(".state .badge").textContent()) ?? "";
  /** Presses a row action and confirms it in its dialog. */
  const confirmed = async (label: string) => {
    await page.getByRole("button", { name: `${label} ${NAME}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `${label} machine ${NAME}?` });
    await dialog.getByRole("button", { name: label, exact: true }).click();
  };
  const shot = async (name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };

  beforeAll(async () => {
    if (!existsSync(join(repo, "apps", "console", "dist", "index.html"))) {
      throw new Error("the console is not built: run `npx vite build --config apps/console/vite.config.ts` (part of `npm run build`)");
    }
    base = mkdtempSync(join(tmpdir(), "flotilla-e2e-console-"));
    addBridge(BRIDGE, GATEWAY);
    restoreEnv = useMachinesEnv(base, `http://${GATEWAY}:${apiPort}`);
    // The agent reaches the API through its own relay on the gateway, as with `./setup.sh start`.
    api = await startTestApi({ FLOTILLA_AGENT_LISTEN: `${GATEWAY}:${apiPort}`, FLOTILLA_HEARTBEAT_MS: "1000" });
    mkdirSync(ARTIFACTS, { recursive: true });
    b = await openBrowser();
    page = b.page;
  }, 120_000);

  afterAll(async () => {
    await b?.close();
    if (api) {
      // The test removes the machine itself; this only cleans up after a failure.
      await api.fetch(`/api/v1/machines/${NAME}?force=true`, { method: "DELETE" }).catch(() => undefined);
      await until("the machine to be gone", async () => (await api.fetch(`/api/v1/machines/${NAME}`)).status === 404, 30_000).catch(
        () => undefined,
      );
      await api.stop();
    }
    removeLeftovers([NAME], BRIDGE);
    restoreEnv?.();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("signs in", async () => {
    await page.goto(`${api.url}/`);
    await page.getByLabel("API token").fill(api.token);
    await page.getByLabel("API token").press("Enter");
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
    await until(
      "the event stream to be live",
      async () =>
        (await page
          .getByRole("status")
          .filter({ hasText: /^live$/ })
          .count()) === 1,
    );
  });

  it("creates a netns machine from the driver's form and shows its provisioning steps as they happen", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Machines", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "Machines" }).waitFor();
    await page.getByLabel("Driver").selectOption("netns");
    // The fields come from the netns driver's self-description, not from the console.
    const drivers = (await (await api.fetch("/api/v1/machines/drivers")).json()) as {
      drivers: { name: string; options: { name: string }[] }[];
    };
    const netnsOptions = drivers.drivers.find((d) => d.name === "netns")!.options.map((o) => o.name);
    expect(netnsOptions).toEqual(expect.arrayContaining(["netns-cidr", "netns-bridge"]));
    for (const option of netnsOptions) await page.getByLabel(option, { exact: true }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill(NAME);
    await page.getByLabel("netns-cidr", { exact: true }).fill(`${GATEWAY}/24`);
    await page.getByLabel("netns-bridge", { exact: true }).fill(BRIDGE);

    await page.evaluate(recordMachine, NAME);
    await page.getByRole("button", { name: "Create", exact: true }).click();
    // A screenshot while a provisioning step is on screen.
    await until("a provisioning step on screen", async () => (await row().locator(".progress").count()) === 1, 30_000);
    await shot("machine-provisioning");
    await until(`${NAME} to be ready`, async () => (await stateOf()) === "ready", 90_000);

    ip = ((await row().locator("td").nth(2).textContent()) ?? "").trim();
    expect(ip).toMatch(/^198\.19\.82\.\d+$/);
    expect(ip).not.toBe(GATEWAY);
    expect(((await row().locator("td").nth(3).textContent()) ?? "").trim()).not.toBe("—");

    const { steps, states } = await seen(page);
    // The recorder set up before the click is still there: the page never reloaded. The driver's
    // steps (network, ready) can be over before the list first shows the new row (CI saw that
    // under load); the provisioning steps after them are each on screen in turn.
    expect(inOrder(states, ["creating", "provisioning", "ready"]), states.join(", ")).toBe(true);
    expect(states.slice(-2)).toEqual(["provisioning", "ready"]);
    const names = steps.map((s) => s.split(":")[0]);
    const expected = ["ssh", "upload agent", "certificates", "start agent", "wait for agent"];
    expect(inOrder(expected, names), steps.join("\n")).toBe(true);
    const created = page.locator(".created");
    expect(await created.textContent()).toContain(`${NAME}: ready`);
  });

  it("shows the docker environment, which the docker CLI uses over mutual TLS", async () => {
    await page.getByRole("button", { name: `Docker environment of ${NAME}`, exact: true }).click();
    const pre = page.locator(`pre[aria-label="Docker environment of ${NAME}"]`);
    await until("the env snippet", async () => ((await pre.textContent()) ?? "").includes("DOCKER_HOST"));
    const snippet = (await pre.textContent()) ?? "";
    expect(snippet).toContain(`export DOCKER_HOST="tcp://${ip}:2376"`);
    expect(snippet).toContain(`# eval $(ctl machine env ${NAME})`);
    const env = parseExports(snippet);
    expect(env).toMatchObject({ DOCKER_TLS_VERIFY: "1", DOCKER_HOST: `tcp://${ip}:2376`, DOCKER_MACHINE_NAME: NAME });
    expect(existsSync(join(env.DOCKER_CERT_PATH, "cert.pem"))).toBe(true);

    await b.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: api.url });
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /^Copied$/ })
      .waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(snippet);

    const dockerEnv = { PATH: process.env.PATH, HOME: join(base, "home"), DOCKER_CONFIG: join(base, "docker"), ...env };
    const version = await run("docker", ["version", "--format", "{{.Server.Version}}"], dockerEnv, 30_000);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).not.toBe("");
    // Without the client certificate the agent refuses.
    const noCert = await run("docker", ["version"], { ...dockerEnv, DOCKER_CERT_PATH: join(base, "nowhere") }, 30_000);
    expect(noCert.code).not.toBe(0);
  });

  it("stops and starts the machine after a confirmation; the state shown follows", async () => {
    await page.evaluate(recordMachine, NAME);
    await confirmed("Stop");
    await until(`${NAME} to be stopped`, async () => (await stateOf()) === "stopped", 60_000);
    expect(await page.getByRole("button", { name: `Start ${NAME}`, exact: true }).count()).toBe(1);
    await confirmed("Start");
    await until(`${NAME} to be ready again`, async () => (await stateOf()) === "ready", 60_000);
    // A netns machine stops in well under the console's refresh interval, so "stopping" may
    // never be on screen; the rest must be, in order.
    const { states } = await seen(page);
    expect(inOrder(states, ["ready", "stopping", "stopped", "starting", "ready"]), states.join(", ")).toBe(true);
    expect(states.filter((s) => s !== "stopping" && s !== "starting")).toEqual(["ready", "stopped", "ready"]);
    expect(((await row().locator("td").nth(2).textContent()) ?? "").trim()).toBe(ip);

    const pre = page.locator(`pre[aria-label="Docker environment of ${NAME}"]`);
    const env = parseExports((await pre.textContent()) ?? "");
    const version = await run(
      "docker",
      ["version", "--format", "{{.Server.Version}}"],
      { PATH: process.env.PATH, HOME: join(base, "home"), DOCKER_CONFIG: join(base, "docker"), ...env },
      30_000,
    );
    expect(version.code, version.stderr).toBe(0);
  });

  it("removes the machine after a confirmation; nothing is left on the host", async () => {
    await page.getByRole("button", { name: `Remove ${NAME}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `Remove machine ${NAME}?` });
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect(await row().count()).toBe(1);
    await confirmed("Remove");
    await until(`${NAME} to leave the list`, async () => (await row().count()) === 0, 60_000);
    expect((await api.fetch(`/api/v1/machines/${NAME}`)).status).toBe(404);

    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(`flt-${NAME}`);
    // The driver takes the bridge with its last machine, whoever made it.
    expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(BRIDGE);
    expect(execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })).not.toContain(join(base, "data", "machines"));
    expect(existsSync(join(base, "data", "machines", NAME))).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(join(base, "data"));
  });

  it("never put a token in a URL, and loaded nothing from elsewhere", async () => {
    expect(b.urls.length).toBeGreaterThan(10);
    expect(b.urls.filter((u) => u.includes(api.token) || u.includes(encodeURIComponent(api.token)))).toEqual([]);
    expect(b.urls.filter((u) => !u.startsWith(`${api.url}/`) && !u.startsWith("data:") && u !== "about:blank")).toEqual([]);
    expect(b.problems).toEqual([]);
  });
});

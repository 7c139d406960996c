// The console's Stacks page in Debian's chromium against the real API, Postgres and Redis, with
// simulated agents: deploy a compose file, see a refusal naming the path, redeploy, remove.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import type { TestApi } from "../../apps/api/test/support";
import { converged, getJson, simNodes, startFastApi, until } from "../../apps/api/test/services-support";
import type { SimAgent } from "../support/sim-agent";
import { openBrowser, type TestBrowser } from "./browser";

const ROOT = resolve(__dirname, "..", "..");
const FILE = (tag: string) =>
  `services:\n  web:\n    image: registry.test/web:\${TAG:-${tag}}\n    deploy: { replicas: 2 }\n  backend:\n    image: registry.test/backend:1\n`;

describe("console: stacks", () => {
  let api: TestApi;
  let agents: SimAgent[] = [];
  let b: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "apps", "console", "dist", "index.html"))) throw new Error("the console is not built: run `npm run build`");
    api = await startFastApi();
    agents = await simNodes(api, 2, { prefix: "cst" });
    b = await openBrowser();
    page = b.page;
    await page.goto(`${api.url}/stacks`);
    await page.getByLabel("API token").fill(api.token);
    await page.getByLabel("API token").press("Enter");
    await page.getByRole("heading", { level: 1, name: "Stacks" }).waitFor();
  });

  afterAll(async () => {
    await b?.close();
    await Promise.all(agents.map((a) => a.stop()));
    await api?.stop();
  });

  const deploy = async (name: string, compose: string, dotenv = "") => {
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("Compose file").fill(compose);
    await page.getByLabel(".env").fill(dotenv);
    await page.getByRole("button", { name: "Deploy" }).click();
  };

  it("refuses a compose file with an unknown key, naming its path, and creates nothing", async () => {
    await deploy("shop", "services:\n  web:\n    image: x\n    replicas: 3\n");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain("services.web.replicas: unknown key");
    expect(await getJson(api, "/api/v1/services")).toEqual([]);
  });

  it("deploys a stack, lists it, and redeploys only what changed", async () => {
    await deploy("shop", FILE("1"));
    await until("the deploy result", async () => (await page.getByRole("status").filter({ hasText: "Stack shop" }).count()) === 1);
    expect(await page.getByRole("status").filter({ hasText: "Stack shop" }).textContent()).toBe(
      "Stack shop: created shop_backend, shop_web",
    );
    await page.locator("tbody tr", { hasText: "shop" }).waitFor();
    expect(await page.locator("tbody tr", { hasText: "shop" }).locator("td").first().textContent()).toBe("2");
    await converged(api, "shop_web", 2);
    await deploy("shop", FILE("1"), "TAG=2\n");
    await until("the redeploy result", async () =>
      ((await page.getByRole("status").filter({ hasText: "Stack shop" }).textContent()) ?? "").includes("updated"),
    );
    expect(await page.getByRole("status").filter({ hasText: "Stack shop" }).textContent()).toBe(
      "Stack shop: updated shop_web; unchanged shop_backend",
    );
  });

  it("removes a stack after confirmation", async () => {
    await page.getByRole("button", { name: "Remove stack shop" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await until("the stack to go", async () => (await page.locator("tbody").textContent())?.includes("No stacks yet"));
    expect(await getJson(api, "/api/v1/stacks")).toEqual([]);
  });
});

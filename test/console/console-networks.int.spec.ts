// The console's Networks page in Debian's chromium against the real API, Postgres and Redis:
// create an overlay network, see an overlapping subnet refused naming the network in the way,
// see a service's VIP, be refused removing a network in use, remove it once free.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import type { TestApi } from "../../apps/api/test/support";
import { getJson, send, startFastApi, until } from "../../apps/api/test/services-support";
import { openBrowser, type TestBrowser } from "./browser";

const ROOT = resolve(__dirname, "..", "..");

describe("console: networks", () => {
  let api: TestApi;
  let b: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "apps", "console", "dist", "index.html"))) throw new Error("the console is not built: run `npm run build`");
    api = await startFastApi();
    b = await openBrowser();
    page = b.page;
    await page.goto(`${api.url}/networks`);
    await page.getByLabel("API token").fill(api.token);
    await page.getByLabel("API token").press("Enter");
    await page.getByRole("heading", { level: 1, name: "Networks" }).waitFor();
  });

  afterAll(async () => {
    await b?.close();
    await api?.stop();
  });

  const create = async (name: string, subnet: string) => {
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("Subnet").fill(subnet);
    await page.getByRole("button", { name: "Create" }).click();
  };

  it("creates a network and refuses an overlapping one, naming the network in the way", async () => {
    await create("front", "198.19.203.0/24");
    await page.locator("tbody tr", { hasText: "front" }).waitFor();
    expect(await page.locator("tbody tr", { hasText: "front" }).locator("td").first().textContent()).toBe("198.19.203.0/24");
    await create("clash", "198.19.203.0/25");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain('subnet 198.19.203.0/25 overlaps network "front"');
    expect((await getJson<{ name: string }[]>(api, "/api/v1/networks")).map((n) => n.name)).toEqual(["front"]);
  });

  it("shows a service's VIP, refuses removing the network in use, removes it once free", async () => {
    expect((await send(api, "POST", "/api/v1/services", { name: "web", image: "busybox", networks: [{ target: "front" }] })).status).toBe(
      201,
    );
    await until("the VIP to show", async () =>
      ((await page.locator("tbody tr", { hasText: "front" }).textContent()) ?? "").includes("web (198.19.203.2)"),
    );
    // The service's page shows it too.
    await page.getByRole("link", { name: "Services" }).click();
    await page.getByRole("link", { name: "web", exact: true }).click();
    await until("the service's networks", async () =>
      (await page.locator("dd", { hasText: "VIP" }).allTextContents()).join(" ").includes("front (VIP 198.19.203.2)"),
    );
    await page.getByRole("link", { name: "Networks" }).click();
    await page.getByRole("heading", { level: 1, name: "Networks" }).waitFor();
    await page.getByRole("button", { name: "Remove network front" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await until("the refusal", async () =>
      (await page.getByRole("alert").allTextContents()).join(" ").includes("network front is in use by service web"),
    );
    expect((await send(api, "DELETE", "/api/v1/services/web")).status).toBe(204);
    await page.getByRole("button", { name: "Remove network front" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await until("the network to go", async () => (await page.locator("tbody").textContent())?.includes("No networks yet"));
    expect(await getJson(api, "/api/v1/networks")).toEqual([]);
  });
});

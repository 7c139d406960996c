// The console served by one of two real `flotilla-api` processes keeps working when that process
// is killed: it learnt the other replica from GET /api/v1/control-plane (FLOTILLA_PUBLIC_URLS),
// its event stream resumes there and its requests go there, without a reload.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Page } from "playwright-core";
import { until } from "../../apps/api/test/services-support";
import { startApiReplicas, type ApiReplicas } from "../support/api-replicas";
import { openBrowser, type TestBrowser } from "./browser";

const ROOT = resolve(__dirname, "..", "..");
const replicasOf = (page: Page, service: string) =>
  page.locator("tbody tr", { has: page.getByRole("link", { name: service, exact: true }) }).locator(".replicas");
const streamLive = async (page: Page) =>
  (await page
    .getByRole("status")
    .filter({ hasText: /^live$/ })
    .count()) === 1;

describe("console over two API replicas, the one that served it killed", () => {
  let cp: ApiReplicas;
  let b: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "apps", "console", "dist", "index.html"))) throw new Error("the console is not built: run `npm run build`");
    cp = await startApiReplicas(2, inject("redisUrl"), (urls) => ({ FLOTILLA_PUBLIC_URLS: urls.join(",") }));
    b = await openBrowser();
    page = b.page;
  });
  afterAll(async () => {
    await b?.close();
    await cp?.stop();
  });

  const send = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(cp.urls[1] + path, {
      method,
      headers: { authorization: `Bearer ${cp.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    return (await res.json()) as Record<string, unknown>;
  };

  it("keeps listing, following and changing services through the other replica", async () => {
    await page.goto(`${cp.urls[0]}/services`);
    await page.getByLabel("API token").fill(cp.token);
    await page.getByLabel("API token").press("Enter");
    await until("the event stream to be live", () => streamLive(page));
    await until("the replica list to be read", async () => b.urls.includes(`${cp.urls[0]}/api/v1/control-plane`));
    const web = await send("POST", "/api/v1/services", { name: "web", image: "busybox", replicas: 1 });
    await until("web 0/1 in the list", async () => (await replicasOf(page, "web").textContent()) === "0/1");
    await page.evaluate(() => Object.assign(window, { noReloadMarker: 42 }));

    await cp.kill(0);
    // A change made elsewhere arrives over the event stream, now from the second replica.
    await send("POST", "/api/v1/services/web/scale", { replicas: 3 });
    await until("web 0/3 in the list", async () => (await replicasOf(page, "web").textContent()) === "0/3", 30_000);
    await until("the event stream to be live again", () => streamLive(page));
    expect(b.urls.some((u) => u.startsWith(`${cp.urls[1]}/api/v1/events`))).toBe(true);

    // A change made in the console goes to the second replica.
    const input = page.getByLabel("Replicas of web");
    await input.fill("5");
    await input.press("Enter");
    await until("web 0/5 in the list", async () => (await replicasOf(page, "web").textContent()) === "0/5", 30_000);
    expect((await send("GET", "/api/v1/services/web")).desired).toBe(5);
    expect(b.urls).toContain(`${cp.urls[1]}/api/v1/services/${String(web.id)}/scale`);
    expect(await page.locator("td").getByRole("alert").count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { noReloadMarker?: number }).noReloadMarker)).toBe(42);
    // The browser's own reports of the killed replica (the event stream it cut, then its refused
    // connections) are expected; nothing else.
    expect(b.problems.filter((p) => !/ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING/.test(p))).toEqual([]);
  });
});

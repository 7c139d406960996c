// Stacks over REST against the real API, Postgres and Redis (simulated agents): a compose file
// deployed as services, a redeploy that updates only the changed service, bad files refused by
// path with nothing created, ls/services/tasks, and removal.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimAgent } from "../../../test/support/sim-agent";
import type { TestApi } from "./support";
import { converged, getJson, send, simNodes, startFastApi } from "./services-support";

const FILE = (webImage: string) => `
services:
  web:
    image: \${REGISTRY:-registry.test}/${webImage}
    command: ["httpd", "-f", "-p", "80"]
    environment: ["MODE=\${MODE}"]
    ports: ["18480:80"]
    deploy:
      replicas: 2
      update_config: { parallelism: 1, order: stop-first }
  api:
    image: registry.test/api:1
    env_file: api.env
`;

interface ServiceJson {
  id: string;
  name: string;
  version: number;
  taskVersion: number;
  spec: { image: string; env: Record<string, string>; labels: Record<string, string>; ports: unknown[] };
}

describe("stacks API", () => {
  let api: TestApi;
  let agents: SimAgent[];
  const deploy = (body: Record<string, unknown>) =>
    send(api, "POST", "/api/v1/stacks", { name: "shop", envFiles: { "api.env": "DB=postgres\n" }, env: { MODE: "prod" }, ...body });

  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2, { prefix: "stk" });
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("refuses bad files by path and creates nothing", async () => {
    const cases: Array<[string, number, string]> = [
      ["services:\n  web:\n    image: x\n    imagee: y\n", 400, "services.web.imagee"],
      ["services:\n  web:\n    image: x\n    ports: ['99999:80']\n", 400, "services.web.ports[0]"],
      ["services:\n  web:\n    image: x\n    volumes: ['data:/data']\n", 400, "services.web.volumes[0]"],
      ["services:\n  web:\n    image: x\n    volumes: ['/data']\n", 501, "services.web.volumes[0]"],
      [
        "services:\n  web:\n    image: x\n  db:\n    image: y\n    healthcheck: { test: [CMD, 'true'], start_interval: 1s }\n",
        501,
        "services.db.healthcheck.start_interval",
      ],
      ["services: [", 400, "compose file"],
    ];
    for (const [compose, status, field] of cases) {
      const res = await deploy({ compose });
      expect(res.status, compose).toBe(status);
      const body = (await res.json()) as { message: string; details: { field?: string } };
      expect(body.details.field, compose).toBe(field);
      expect(body.message).toContain(field);
    }
    expect(await getJson(api, "/api/v1/stacks")).toEqual([]);
    expect(await getJson(api, "/api/v1/services")).toEqual([]);
  });

  it("deploys a compose file as services of the stack and runs them", async () => {
    const res = await deploy({ compose: FILE("web:1"), dotenv: "REGISTRY=reg.example:5000\n" });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({
      name: "shop",
      created: ["shop_api", "shop_web"],
      updated: [],
      unchanged: [],
      removed: [],
      networksCreated: ["shop_default"],
    });
    const services = await getJson<ServiceJson[]>(api, "/api/v1/stacks/shop/services");
    const web = services.find((s) => s.name === "shop_web")!;
    expect(web.spec).toMatchObject({
      image: "reg.example:5000/web:1",
      env: { MODE: "prod" },
      labels: { "com.docker.stack.namespace": "shop" },
    });
    expect(services.find((s) => s.name === "shop_api")!.spec.env).toEqual({ DB: "postgres" });
    expect(await getJson(api, "/api/v1/stacks")).toEqual([{ name: "shop", services: 2 }]);
    await converged(api, "shop_web", 2);
    await converged(api, "shop_api", 1);
    const tasks = await getJson<{ name: string }[]>(api, "/api/v1/stacks/shop/tasks");
    expect(tasks.length).toBeGreaterThanOrEqual(3);
  });

  it("redeploys: nothing changes for the same file; a new image updates only that service", async () => {
    const before = await getJson<ServiceJson[]>(api, "/api/v1/stacks/shop/services");
    const same = await deploy({ compose: FILE("web:1"), dotenv: "REGISTRY=reg.example:5000\n" });
    expect(await same.json()).toMatchObject({ created: [], updated: [], unchanged: ["shop_api", "shop_web"] });
    const next = await deploy({ compose: FILE("web:2"), dotenv: "REGISTRY=reg.example:5000\n" });
    expect(await next.json()).toMatchObject({ created: [], updated: ["shop_web"], unchanged: ["shop_api"] });
    const after = await getJson<ServiceJson[]>(api, "/api/v1/stacks/shop/services");
    const v = (list: ServiceJson[], name: string) => list.find((s) => s.name === name)!;
    expect(v(after, "shop_web").spec.image).toBe("reg.example:5000/web:2");
    expect(v(after, "shop_web").taskVersion).toBe(v(before, "shop_web").taskVersion + 1);
    expect(v(after, "shop_api").version).toBe(v(before, "shop_api").version);
    await converged(api, "shop_web", 2);
  });

  it("prunes services the file dropped, and removes the stack", async () => {
    const res = await deploy({ compose: "services:\n  web:\n    image: registry.test/web:3\n", prune: true });
    expect(await res.json()).toMatchObject({ updated: ["shop_web"], removed: ["shop_api"] });
    const del = await send(api, "DELETE", "/api/v1/stacks/shop");
    expect(await del.json()).toEqual({ removed: ["shop_web"], networksRemoved: ["shop_default"] });
    expect(await getJson(api, "/api/v1/stacks")).toEqual([]);
    expect((await send(api, "DELETE", "/api/v1/stacks/shop")).status).toBe(404);
    expect((await send(api, "GET", "/api/v1/stacks/shop/services")).status).toBe(404);
  });
});

// A stack's overlay networks against the real API, Postgres and Redis (simulated agents): the
// file's networks are created as STACK_KEY (or reused when external), services attach to them
// with aliases, a redeploy of the same file changes nothing, a bad file creates nothing, and
// stack rm removes the stack's own networks but not an external one.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NetworkView, ServiceView } from "@flotilla/api-types";
import type { SimAgent } from "../../../test/support/sim-agent";
import type { TestApi } from "./support";
import { converged, getJson, send, simNodes, startFastApi } from "./services-support";

const FILE = `
services:
  web:
    image: busybox
    networks: [front]
  api:
    image: busybox
    deploy: { replicas: 2 }
    networks:
      front:
        aliases: [backend]
      shared:
networks:
  front:
    driver: overlay
    ipam: { config: [{ subnet: 198.19.202.0/24 }] }
  shared:
    external: true
`;

describe("stacks with overlay networks", () => {
  let api: TestApi;
  let agents: SimAgent[];
  const deploy = (compose: string, name = "app") => send(api, "POST", "/api/v1/stacks", { name, compose });
  const networkNames = async () => (await getJson<NetworkView[]>(api, "/api/v1/networks")).map((n) => n.name);

  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2, { prefix: "stn" });
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  it("refuses an undeclared network, a missing external one or an unsupported option, and creates nothing", async () => {
    const cases: Array<[string, number, string]> = [
      ["services:\n  web:\n    image: busybox\n    networks: [back]\n", 400, "services.web.networks[0]"],
      [FILE, 400, "networks.shared"],
      ["services:\n  web:\n    image: busybox\nnetworks:\n  n: { driver: bridge }\n", 501, "networks.n.driver"],
      ["services:\n  web:\n    image: busybox\nnetworks:\n  n: { driver_opts: { encrypted: '' } }\n", 501, "networks.n.driver_opts"],
    ];
    for (const [compose, status, field] of cases) {
      const res = await deploy(compose);
      expect([field, res.status]).toEqual([field, status]);
      expect(((await res.json()) as { details: { field: string } }).details.field).toBe(field);
    }
    // A network that cannot be made (its subnet overlaps): neither it nor any service is left.
    expect((await send(api, "POST", "/api/v1/networks", { name: "taken", subnet: "198.19.202.0/25" })).status).toBe(201);
    const res = await deploy(FILE.replace("external: true", "{}"));
    expect(res.status).toBe(409);
    expect(await networkNames()).toEqual(["taken"]);
    expect((await send(api, "DELETE", "/api/v1/networks/taken")).status).toBe(204);
    expect(await getJson<unknown[]>(api, "/api/v1/stacks")).toEqual([]);
  });

  it("creates the stack's networks and attaches its services, with aliases; the same file again changes nothing", async () => {
    const shared = (await (await send(api, "POST", "/api/v1/networks", { name: "shared" })).json()) as NetworkView;
    const res = await deploy(FILE);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ created: ["app_api", "app_web"], networksCreated: ["app_front"] });
    const front = await getJson<NetworkView>(api, "/api/v1/networks/app_front");
    expect(front).toMatchObject({ subnet: "198.19.202.0/24", labels: { "com.docker.stack.namespace": "app" } });
    const apiSvc = await getJson<ServiceView>(api, "/api/v1/services/app_api");
    expect(apiSvc.spec.networks).toEqual([
      // Its key in the file too, as docker stack deploy: siblings reach it as `api`.
      { target: front.id, aliases: ["backend", "api"] },
      { target: shared.id, aliases: ["api"] },
    ]);
    expect(apiSvc.virtualIps.map((v) => v.network)).toEqual(["app_front", "shared"]);
    await converged(api, "app_api", 2);
    const again = await deploy(FILE);
    expect(await again.json()).toMatchObject({ created: [], updated: [], unchanged: ["app_api", "app_web"], networksCreated: [] });
  });

  it("stack rm removes the stack's networks and keeps the external one", async () => {
    expect((await send(api, "DELETE", "/api/v1/stacks/app")).status).toBeLessThan(300);
    expect(await networkNames()).toEqual(["shared"]);
    expect((await send(api, "DELETE", "/api/v1/networks/shared")).status).toBe(204);
  });
});

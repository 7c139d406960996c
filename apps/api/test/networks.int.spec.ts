// Overlay networks' control plane against the real API, Postgres and Redis, with simulated agents
// (each on its own loopback address, so nodes have distinct underlay addresses): IPAM (given and
// default subnets, overlap refusal, races), services' VIPs and tasks' addresses, the container
// create body, each node's table by long poll, and removal.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeNetworkTable } from "@flotilla/core";
import type { NetworkView, ServiceView } from "@flotilla/api-types";
import type { TestApi } from "./support";
import { SimAgent } from "../../../test/support/sim-agent";
import { converged, getJson, HEARTBEAT_MS, live, send, startFastApi, tasksOf, until } from "./services-support";

// The lead's subnets for this suite: 198.19.200.0/24 – 198.19.204.0/24.
const FRONT = "198.19.200.0/24";

describe("overlay networks", () => {
  let api: TestApi;
  let agents: SimAgent[];
  const nodeIds = new Map<string, string>();

  beforeAll(async () => {
    api = await startFastApi();
    agents = [];
    for (let i = 1; i <= 3; i++) {
      agents.push(
        await new SimAgent({
          hostname: `ovl-${i}`,
          apiUrl: api.url,
          token: api.token,
          heartbeatMs: HEARTBEAT_MS,
          images: ["busybox:latest"],
          bindAddress: `127.0.0.${10 + i}`,
        }).start(),
      );
    }
    for (const n of await getJson<{ id: string; hostname: string }[]>(api, "/api/v1/nodes")) nodeIds.set(n.hostname, n.id);
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  const create = (body: unknown) => send(api, "POST", "/api/v1/networks", body);
  const table = async (node: string, query = "waitMs=0"): Promise<NodeNetworkTable> => {
    const res = await send(api, "GET", `/api/v1/nodes/networks?node=${node}&${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as NodeNetworkTable;
  };
  const err = async (res: Response) => ({
    status: res.status,
    ...((await res.json()) as { message: string; details: Record<string, unknown> }),
  });

  it("names each node's own address in its table while no network exists yet", async () => {
    // In one CI run every agent was sent nodeAddress "" before the first network existed, refused
    // the table and asked again every heartbeat period.
    const t1 = await table("ovl-1");
    expect(t1).toMatchObject({ nodeAddress: "127.0.0.11", networks: [] });
    expect(t1).not.toHaveProperty("unavailable");
    expect((await table("ovl-2")).nodeAddress).toBe("127.0.0.12");
  });

  it("creates networks with a given subnet or the default pool's next /24, and refuses overlaps and bad input by field", async () => {
    const front = await create({ name: "front", driver: "overlay", subnet: FRONT, labels: { tier: "web" } });
    expect(front.status).toBe(201);
    const f = (await front.json()) as NetworkView;
    expect(f).toMatchObject({
      name: "front",
      driver: "overlay",
      subnet: FRONT,
      gateway: "198.19.200.1",
      labels: { tier: "web" },
      services: [],
    });
    expect(f.vni).toBeGreaterThanOrEqual(4096);
    const pooled = (await (await create({ name: "pooled" })).json()) as NetworkView;
    expect(pooled).toMatchObject({ subnet: "10.0.0.0/24", gateway: "10.0.0.1" });
    expect(pooled.vni).not.toBe(f.vni);

    expect(await err(await create({ name: "clash", subnet: "198.19.200.128/25" }))).toMatchObject({
      status: 409,
      message: 'subnet 198.19.200.128/25 overlaps network "front" (198.19.200.0/24)',
      details: { field: "subnet", network: "front" },
    });
    expect(await err(await create({ name: "gw", subnet: "198.19.201.0/24", gateway: "198.19.202.1" }))).toMatchObject({
      status: 400,
      details: { field: "gateway" },
    });
    expect(await err(await create({ name: "bad", subnet: "198.19.201.7/24" }))).toMatchObject({
      status: 400,
      details: { field: "subnet" },
    });
    expect(await err(await create({ name: "br", driver: "bridge" }))).toMatchObject({ status: 400, details: { field: "driver" } });
    expect(await err(await create({ name: "int", internal: true }))).toMatchObject({ status: 501, details: { field: "internal" } });
    expect(await err(await create({ name: "front" }))).toMatchObject({ status: 409, details: { field: "name" } });
    expect(await err(await create({ name: "x", opts: { encrypted: "" } }))).toMatchObject({ status: 400 });
    // Nothing was created by the refusals.
    const names = (await getJson<NetworkView[]>(api, "/api/v1/networks")).map((n) => n.name);
    expect(names).toEqual(["front", "pooled"]);
    expect((await getJson<NetworkView>(api, `/api/v1/networks/${f.id}`)).name).toBe("front");
    expect((await send(api, "GET", "/api/v1/networks/nope")).status).toBe(404);
  });

  it("gives racing creates distinct subnets and VNIs", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => create({ name: `race-${i}` })));
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
    const made = (await Promise.all(results.map((r) => r.json()))) as NetworkView[];
    expect(new Set(made.map((m) => m.subnet)).size).toBe(8);
    expect(new Set(made.map((m) => m.vni)).size).toBe(8);
    // Racing creates of one name: one wins.
    const same = await Promise.all(Array.from({ length: 4 }, () => create({ name: "race-same", subnet: "198.19.203.0/24" })));
    expect(same.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    for (const m of [...made.map((x) => x.name), "race-same"])
      expect((await send(api, "DELETE", `/api/v1/networks/${m}`)).status).toBe(204);
  });

  it("refuses a service on a missing network, naming it, and creates nothing", async () => {
    const res = await send(api, "POST", "/api/v1/services", {
      name: "lost",
      image: "busybox",
      networks: [{ target: "front" }, { target: "nowhere" }],
    });
    expect(await err(res)).toMatchObject({ status: 400, details: { field: "networks[1].target", value: "nowhere" } });
    expect((await send(api, "GET", "/api/v1/services/lost")).status).toBe(404);
    expect((await getJson<NetworkView>(api, "/api/v1/networks/front")).addressesInUse).toBe(0);
  });

  it("gives services created at once distinct VIPs, whatever the order of their networks", async () => {
    expect((await create({ name: "ra", subnet: "198.19.201.0/24" })).status).toBe(201);
    expect((await create({ name: "rb", subnet: "198.19.202.0/24" })).status).toBe(201);
    const made = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        send(api, "POST", "/api/v1/services", {
          name: `vip-${i}`,
          image: "busybox",
          replicas: 0,
          networks: i % 2 ? [{ target: "ra" }, { target: "rb" }] : [{ target: "rb" }, { target: "ra" }],
        }),
      ),
    );
    expect(made.map((r) => r.status)).toEqual(Array(10).fill(201));
    const vips = ((await Promise.all(made.map((r) => r.json()))) as ServiceView[]).flatMap((s) => s.virtualIps);
    for (const net of ["ra", "rb"]) {
      const addrs = vips.filter((v) => v.network === net).map((v) => v.addr);
      expect(addrs).toHaveLength(10);
      expect(new Set(addrs).size).toBe(10);
    }
    for (let i = 0; i < 10; i++) expect((await send(api, "DELETE", `/api/v1/services/vip-${i}`)).status).toBe(204);
    // The VIPs went with their services: the networks are free to go.
    for (const net of ["ra", "rb"]) {
      expect((await getJson<NetworkView>(api, `/api/v1/networks/${net}`)).addressesInUse).toBe(0);
      expect((await send(api, "DELETE", `/api/v1/networks/${net}`)).status).toBe(204);
    }
  });

  let webVip = "";
  it("gives a service a VIP and each task an address at dispatch, carried in the container create body", async () => {
    const res = await send(api, "POST", "/api/v1/services", {
      name: "web",
      image: "busybox",
      replicas: 2,
      networks: [{ target: "front", aliases: ["www"] }],
      placement: { constraints: ["node.hostname!=ovl-3"], maxReplicasPerNode: 1 },
    });
    expect(res.status).toBe(201);
    const svc = (await res.json()) as ServiceView;
    const front = await getJson<NetworkView>(api, "/api/v1/networks/front");
    expect(svc.spec.networks).toEqual([{ target: front.id, aliases: ["www"] }]);
    expect(svc.virtualIps).toEqual([{ networkId: front.id, network: "front", addr: "198.19.200.2" }]);
    webVip = svc.virtualIps[0].addr;
    await converged(api, "web", 2);
    const containers = agents.flatMap((a) => a.running().filter((c) => c.name.startsWith("web.")));
    expect(containers).toHaveLength(2);
    const ips = containers.map((c) => {
      const config = c.networking as {
        EndpointsConfig: Record<string, { NetworkID: string; IPAMConfig: { IPv4Address: string }; Aliases: string[] }>;
      };
      expect(Object.keys(config.EndpointsConfig)).toEqual(["front"]);
      const e = config.EndpointsConfig.front;
      expect(e).toMatchObject({ NetworkID: front.id, Aliases: ["web", "www"] });
      return e.IPAMConfig.IPv4Address;
    });
    expect(ips.sort()).toEqual(["198.19.200.3", "198.19.200.4"]);
    expect((await getJson<NetworkView>(api, "/api/v1/networks/front")).services).toEqual([{ id: svc.id, name: "web", vip: webVip }]);
  });

  it("gives each node the table of the networks it runs tasks on: endpoints, peers, VIP and running backends", async () => {
    const t1 = await table("ovl-1");
    expect(t1.nodeAddress).toBe("127.0.0.11");
    expect(t1.networks).toHaveLength(1);
    const [v] = t1.networks;
    expect(v).toMatchObject({ name: "front", subnet: FRONT, gateway: "198.19.200.1", peers: ["127.0.0.12"] });
    expect(v.endpoints.map((e) => [e.ip, e.nodeAddress]).sort()).toEqual([
      ["198.19.200.3", expect.any(String)],
      ["198.19.200.4", expect.any(String)],
    ]);
    expect(new Set(v.endpoints.map((e) => e.nodeAddress))).toEqual(new Set(["127.0.0.11", "127.0.0.12"]));
    expect(v.endpoints.every((e) => e.mac === `02:42:c6:13:c8:0${e.ip.slice(-1)}`)).toBe(true);
    expect(v.services).toEqual([
      {
        id: expect.any(String),
        name: "web",
        endpointMode: "vip",
        vip: webVip,
        aliases: ["www"],
        backends: ["198.19.200.3", "198.19.200.4"],
      },
    ]);
    // A node without a task on the network does not see it; an unchanged table is a 204.
    const t3 = await table("ovl-3");
    expect(t3.networks).toEqual([]);
    expect((await send(api, "GET", `/api/v1/nodes/networks?node=ovl-3&waitMs=200&version=${t3.version}`)).status).toBe(204);
    expect(await err(await send(api, "GET", "/api/v1/nodes/networks?waitMs=0"))).toMatchObject({ status: 400, details: { field: "node" } });
    expect(await err(await send(api, "GET", "/api/v1/nodes/networks?node=ovl-1&waitMs=soon"))).toMatchObject({
      status: 400,
      details: { field: "waitMs" },
    });
  });

  it("wakes a waiting node when a task of the network comes to it", async () => {
    const t3 = await table("ovl-3");
    const waiting = send(api, "GET", `/api/v1/nodes/networks?node=ovl-3&waitMs=30000&version=${t3.version}`);
    expect((await send(api, "PATCH", "/api/v1/services/web", { replicas: 3, placement: { constraints: [] } })).status).toBe(200);
    const res = await waiting;
    expect(res.status).toBe(200);
    let next = (await res.json()) as NodeNetworkTable;
    // Follow the versions until the new task runs there and takes traffic.
    while (next.networks[0]?.services[0]?.backends.length !== 3) {
      const r = await send(api, "GET", `/api/v1/nodes/networks?node=ovl-3&waitMs=30000&version=${next.version}`);
      expect(r.status).toBe(200);
      next = (await r.json()) as NodeNetworkTable;
    }
    expect(next.networks[0].peers).toEqual(["127.0.0.11", "127.0.0.12"]);
    // The placement change is a new task version: wait for its rolling update to finish, or the
    // next tests' tables change under them as it replaces the remaining tasks.
    await until("web's update to complete", async () => {
      const s = await getJson<ServiceView>(api, "/api/v1/services/web");
      const l = live(await tasksOf(api, "web"));
      return l.length === 3 && l.every((t) => t.state === "RUNNING" && t.specVersion === s.taskVersion);
    });
    const addresses = agents.flatMap((a) =>
      a
        .running()
        .map(
          (c) =>
            (c.networking as { EndpointsConfig: Record<string, { IPAMConfig: { IPv4Address: string } }> }).EndpointsConfig.front.IPAMConfig
              .IPv4Address,
        ),
    );
    expect(new Set(addresses).size).toBe(addresses.length);
    expect(addresses).not.toContain(webVip);
  });

  it("carries the table in heartbeat replies to agents that ask for it", async () => {
    const beat = (networksVersion?: string) =>
      send(api, "POST", "/api/v1/nodes/heartbeat", {
        hostname: "ovl-1",
        engineUrl: agents[0].url,
        resources: { nanoCpus: 4e9, memoryBytes: 8 * 1024 ** 3 },
        containers: [...agents[0].containers.values()].map((c) => ({ id: c.id, labels: c.labels, state: c.state })),
        ...(networksVersion !== undefined ? { networksVersion } : {}),
      });
    const first = (await (await beat("")).json()) as { networks?: NodeNetworkTable };
    expect(first.networks?.networks.map((n) => n.name)).toEqual(["front"]);
    expect(((await (await beat(first.networks!.version)).json()) as { networks?: unknown }).networks).toBeUndefined();
    expect(((await (await beat()).json()) as { networks?: unknown }).networks).toBeUndefined();
  });

  it("frees a finished task's address, given again only in its turn: never two live tasks with one address", async () => {
    const addresses = () =>
      agents.flatMap((a) =>
        a
          .running()
          .map(
            (c) =>
              (c.networking as { EndpointsConfig: Record<string, { IPAMConfig: { IPv4Address: string } }> }).EndpointsConfig.front
                .IPAMConfig.IPv4Address,
          ),
      );
    const before = live(await tasksOf(api, "web"));
    const first = addresses();
    expect(first).toHaveLength(3);
    expect((await send(api, "PATCH", "/api/v1/services/web", { replicas: 1 })).status).toBe(200);
    await converged(api, "web", 1);
    expect((await send(api, "PATCH", "/api/v1/services/web", { replicas: 3 })).status).toBe(200);
    await converged(api, "web", 3);
    const running = addresses();
    // The two new tasks took the next addresses after the last given (serial), not those of the
    // tasks that just ended (their containers may still hold them while they stop); no two alike.
    expect(new Set(running).size).toBe(3);
    const now = live(await tasksOf(api, "web"));
    expect(new Set(now.map((t) => t.id))).not.toEqual(new Set(before.map((t) => t.id)));
    const kept = now.filter((t) => before.some((b) => b.id === t.id)).length;
    expect(running.filter((ip) => first.includes(ip))).toHaveLength(kept);
    expect((await getJson<NetworkView>(api, "/api/v1/networks/front")).addressesInUse).toBe(4);
  });

  it("refuses to remove a network a service uses, naming it; releases the VIP when the service leaves; then removes it", async () => {
    expect(await err(await send(api, "DELETE", "/api/v1/networks/front"))).toMatchObject({
      status: 409,
      message: "network front is in use by service web",
      details: { services: ["web"] },
    });
    const left = (await (await send(api, "PATCH", "/api/v1/services/web", { networks: [] })).json()) as ServiceView;
    expect(left.virtualIps).toEqual([]);
    // The replaced tasks run without the network; no node sees it any more.
    await until("web's tasks to leave front", async () => {
      const t = await table("ovl-1");
      return t.networks.length === 0 && live(await tasksOf(api, "web")).every((x) => x.state === "RUNNING");
    });
    expect((await send(api, "DELETE", "/api/v1/networks/front")).status).toBe(204);
    expect((await send(api, "GET", "/api/v1/networks/front")).status).toBe(404);
  });

  it("has no VIP in dnsrr mode and refuses dnsrr with an ingress port", async () => {
    expect((await create({ name: "back", subnet: "198.19.201.0/24" })).status).toBe(201);
    const res = await send(api, "POST", "/api/v1/services", {
      name: "db",
      image: "busybox",
      endpointMode: "dnsrr",
      networks: [{ target: "back" }],
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as ServiceView).virtualIps).toEqual([]);
    const bad = await send(api, "POST", "/api/v1/services", {
      name: "db2",
      image: "busybox",
      endpointMode: "dnsrr",
      ports: [{ published: 18300, target: 80 }],
    });
    expect(await err(bad)).toMatchObject({ status: 400, details: { field: "ports[0].mode" } });
    // A removed service's VIP goes with it.
    expect((await send(api, "PATCH", "/api/v1/services/db", { endpointMode: "vip" })).status).toBe(200);
    expect((await getJson<ServiceView>(api, "/api/v1/services/db")).virtualIps).toMatchObject([{ network: "back", addr: "198.19.201.2" }]);
    expect((await send(api, "DELETE", "/api/v1/services/db")).status).toBe(204);
    expect((await getJson<NetworkView>(api, "/api/v1/networks/back")).services).toEqual([]);
    expect((await send(api, "DELETE", "/api/v1/networks/back")).status).toBe(204);
  });

  it("rejects a task when its network has no address left, saying so, and runs the others", async () => {
    // A /29: .1 the gateway, .2 the VIP, .3 to .6 for tasks.
    expect((await create({ name: "tiny", subnet: "198.19.203.0/29" })).status).toBe(201);
    expect(
      (await send(api, "POST", "/api/v1/services", { name: "crowd", image: "busybox", replicas: 5, networks: [{ target: "tiny" }] }))
        .status,
    ).toBe(201);
    const rejected = await until("a task refused for want of an address", async () =>
      (await getJson<{ state: string; error: string | null }[]>(api, "/api/v1/tasks?service=crowd")).find(
        (t) => t.state === "REJECTED" && t.error?.includes("network tiny (198.19.203.0/29) has no free address left"),
      ),
    );
    expect(rejected.error).toContain("overlay networks:");
    await until("four tasks running", async () => live(await tasksOf(api, "crowd")).filter((t) => t.state === "RUNNING").length === 4);
    expect((await send(api, "DELETE", "/api/v1/services/crowd")).status).toBe(204);
    expect((await send(api, "DELETE", "/api/v1/networks/tiny")).status).toBe(204);
  });

  it("gives a node whose engine URL has no address no networks and no address, saying why", async () => {
    // Last: the node registers here with no agent behind it.
    const beat = await send(api, "POST", "/api/v1/nodes/heartbeat", {
      hostname: "ovl-unix",
      engineUrl: "unix:///var/run/docker.sock",
      resources: { nanoCpus: 4e9, memoryBytes: 8 * 1024 ** 3 },
      containers: [],
      networksVersion: "",
    });
    expect(beat.status).toBe(200);
    const why = "its engine URL unix:///var/run/docker.sock gives no underlay address (only an http(s)://<IPv4>:<port> engine URL does)";
    const fromBeat = ((await beat.json()) as { networks?: NodeNetworkTable }).networks;
    expect(fromBeat).toEqual({ version: expect.any(String), networks: [], unavailable: why });
    const t = await table("ovl-unix");
    expect(t).toEqual(fromBeat);
    // Unchanged: the poll waits, so its agent is told once.
    expect((await send(api, "GET", `/api/v1/nodes/networks?node=ovl-unix&waitMs=200&version=${t.version}`)).status).toBe(204);
    expect((await table("ovl-1")).nodeAddress).toBe("127.0.0.11");
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as {
      paths: Record<string, Record<string, { parameters?: { name: string }[] }>>;
    };
    expect(Object.keys(doc.paths["/api/v1/networks"]).sort()).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/api/v1/networks/{ref}"]).sort()).toEqual(["delete", "get"]);
    expect(doc.paths["/api/v1/nodes/networks"].get.parameters?.map((p) => p.name).sort()).toEqual(["node", "version", "waitMs"]);
  });
});

// The agents' long poll for the ingress table (GET /api/v1/nodes/ingress) against the real API,
// Postgres and Redis, with simulated agents running the tasks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "./support";
import type { SimAgent } from "../../../test/support/sim-agent";
import { converged, send, simNodes, startFastApi } from "./services-support";

interface Table {
  version: string;
  ports: { port: number; traffic?: string; backends: { host: string; port: number }[] }[];
}

describe("GET /api/v1/nodes/ingress", () => {
  let api: TestApi;
  let agents: SimAgent[];
  beforeAll(async () => {
    api = await startFastApi();
    agents = await simNodes(api, 2, { prefix: "watch" });
  });
  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await api?.stop();
  });

  const poll = (query: string) => send(api, "GET", `/api/v1/nodes/ingress?${query}`);

  it("answers at once when the version differs, 204 when it stays the same for waitMs", async () => {
    const first = await poll("waitMs=0");
    expect(first.status).toBe(200);
    const table = (await first.json()) as Table;
    expect(typeof table.version).toBe("string");
    expect((await poll(`waitMs=0&version=${table.version}`)).status).toBe(204);
    expect((await poll(`waitMs=300&version=${table.version}`)).status).toBe(204);
  });

  it("a poll waiting on the current version is answered with the new table when a service publishes a port, then when its task runs", async () => {
    const current = (await (await poll("waitMs=0")).json()) as Table;
    // Held by the API until the table changes: well inside the 30 s asked for.
    const waiting = poll(`waitMs=30000&version=${current.version}`);
    const created = await send(api, "POST", "/api/v1/services", {
      name: "watched",
      image: "busybox",
      replicas: 1,
      ports: [{ published: 18090, target: 80, traffic: "local" }],
    });
    expect(created.status).toBe(201);
    const res = await waiting;
    expect(res.status).toBe(200);
    let table = (await res.json()) as Table;
    expect(table.version).not.toBe(current.version);
    await converged(api, "watched", 1);
    // Polls follow the versions until the running task is listed (the port appears first, with no backend).
    while (!table.ports.find((p) => p.port === 18090)?.backends.length) {
      const next = await poll(`waitMs=30000&version=${table.version}`);
      expect(next.status).toBe(200);
      table = (await next.json()) as Table;
    }
    expect(table.ports.find((p) => p.port === 18090)).toMatchObject({ traffic: "local", backends: [{ port: expect.any(Number) }] });
  });

  it("refuses a traffic the mesh does not have, or traffic on a host-mode port, naming the field and creating nothing", async () => {
    // The first is the edge schema's (zod's path), the second core's rule.
    for (const [port, field] of [
      [{ published: 18091, target: 80, traffic: "nearby" }, "ports.0.traffic"],
      [{ published: 18091, target: 80, mode: "host", traffic: "local" }, "ports[0].traffic"],
    ] as const) {
      const res = await send(api, "POST", "/api/v1/services", { name: "badtraffic", image: "busybox", ports: [port] });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ details: { field } });
    }
    expect((await send(api, "GET", "/api/v1/services/badtraffic")).status).toBe(404);
  });

  it("is in the OpenAPI document, with traffic on published ports", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as {
      paths: Record<string, Record<string, { tags?: string[]; parameters?: { name: string }[] }>>;
    };
    const get = doc.paths["/api/v1/nodes/ingress"].get;
    expect(get.tags).toEqual(["nodes"]);
    expect(get.parameters?.map((p) => p.name).sort()).toEqual(["version", "waitMs"]);
    expect(JSON.stringify(doc)).toContain("only the receiving node's own tasks answer");
  });

  it("refuses a bad waitMs, naming it", async () => {
    const res = await poll("waitMs=99999999");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ details: { field: "waitMs" } });
    expect((await poll("waitMs=soon")).status).toBe(400);
  });
});

// Mounts of services over REST against the real API, Postgres and Redis: stored and shown in
// their canonical form, bad ones refused naming the field with nothing created, and the attack —
// an operator token binding a node's path (/etc, the agent's keys) into a task — refused on
// create, update and stack deploy, while the operator may still run a service an admin gave a
// bind mount.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "./support";

interface ServiceJson {
  name: string;
  version: number;
  spec: { mounts: unknown[]; mode: { replicas?: number } };
}

describe("service mounts", () => {
  let api: TestApi;
  let operator: string;
  const as = (token: string | undefined, method: string, path: string, body?: unknown) =>
    api.fetch(path, { method, ...(token ? { token } : {}), ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const names = async () => ((await (await api.fetch("/api/v1/services")).json()) as ServiceJson[]).map((s) => s.name).sort();
  const BIND = { type: "bind", source: "/etc", target: "/host-etc" };

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    const res = await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "ops", role: "operator" }) });
    expect(res.status).toBe(201);
    operator = ((await res.json()) as { token: string }).token;
  });
  afterAll(() => api?.stop());

  it("stores volumes, binds and tmpfs with their defaults and shows them", async () => {
    const res = await as(undefined, "POST", "/api/v1/services", {
      name: "db",
      image: "busybox",
      mounts: [{ type: "volume", source: "pgdata", target: "/data/" }, BIND, { type: "tmpfs", target: "/cache", tmpfsSizeBytes: 1048576 }],
    });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(((await res.json()) as ServiceJson).spec.mounts).toEqual([
      { type: "volume", source: "pgdata", target: "/data", readOnly: false },
      { ...BIND, readOnly: false },
      { type: "tmpfs", target: "/cache", readOnly: false, tmpfsSizeBytes: 1048576 },
    ]);
  });

  it.each([
    [[{ type: "volume", source: "d", target: "data" }], "mounts[0].target", "mount target must be an absolute path"],
    [[{ type: "volume", target: "/data" }], "mounts[0].source", "a volume mount needs a source"],
    [[{ type: "volume", source: "d", target: "/d", size: 1 }], "mounts.0", "size"],
    [[{ type: "nfs", source: "d", target: "/d" }], "mounts.0.type", ""],
  ])("refuses %j naming %s, creating nothing", async (mounts, field, message) => {
    const before = await names();
    const res = await as(undefined, "POST", "/api/v1/services", { name: "bad", image: "busybox", mounts });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string; details: { field?: string } };
    expect(body.details.field ?? body.message).toContain(field);
    expect(body.message).toContain(message);
    expect(await names()).toEqual(before);
  });

  it("refuses an operator's bind mount on create, update and stack deploy, changing nothing", async () => {
    const before = await names();
    const create = await as(operator, "POST", "/api/v1/services", { name: "sneak", image: "busybox", mounts: [BIND] });
    expect(create.status).toBe(403);
    expect(((await create.json()) as { message: string }).message).toBe(
      "only an admin token may bind a node's paths into a service (mounts: /etc)",
    );
    const plain = await as(operator, "POST", "/api/v1/services", {
      name: "plain",
      image: "busybox",
      mounts: [{ type: "volume", source: "v", target: "/v" }],
    });
    expect(plain.status).toBe(201);
    const update = await as(operator, "PATCH", "/api/v1/services/plain", { mounts: [{ type: "bind", source: "/", target: "/host" }] });
    expect(update.status).toBe(403);
    const plainNow = (await (await api.fetch("/api/v1/services/plain")).json()) as ServiceJson;
    expect(plainNow.version).toBe(1);
    const stack = await as(operator, "POST", "/api/v1/stacks", {
      name: "st",
      compose: "services:\n  a:\n    image: busybox\n  b:\n    image: busybox\n    volumes: ['/root:/r']\n",
    });
    expect(stack.status).toBe(403);
    expect(((await stack.json()) as { message: string }).message).toContain("st_b: /root");
    expect(await names()).toEqual([...before, "plain"].sort());
  });

  it("lets an operator scale and update a service an admin gave a bind mount, keeping it", async () => {
    const scaled = await as(operator, "POST", "/api/v1/services/db/scale", { replicas: 2 });
    expect(scaled.status).toBe(200);
    const updated = await as(operator, "PATCH", "/api/v1/services/db", { env: { A: "1" } });
    expect(updated.status).toBe(200);
    const spec = ((await updated.json()) as ServiceJson).spec;
    expect(spec.mode.replicas).toBe(2);
    expect(spec.mounts).toContainEqual({ ...BIND, readOnly: false });
    // Making the admin's read-write bind point elsewhere is a new bind.
    const moved = await as(operator, "PATCH", "/api/v1/services/db", {
      mounts: [{ type: "bind", source: "/etc", target: "/elsewhere" }],
    });
    expect(moved.status).toBe(403);
  });

  it("describes mounts in the OpenAPI document", async () => {
    const doc = (await (await api.fetch("/api/docs-json")).json()) as {
      paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } } }>;
    };
    const schema = doc.paths["/api/v1/services"]?.post?.requestBody?.content["application/json"]?.schema;
    expect(schema?.properties).toHaveProperty("mounts");
  });
});

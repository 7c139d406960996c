// Roles of issue 11: operator (services, nodes, machines; no tokens, no machine reaching into
// the control plane's host) and viewer (read only), enforced by the guard on the real API; every
// request that may change state leaves an audit event, refusals included.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../src/events/events.service";
import { startTestApi, type TestApi } from "./support";
import { ctl } from "../../ctl/test/run-ctl";

describe("operator and viewer tokens", () => {
  let api: TestApi;
  let operator: string;
  let viewer: string;
  const as = (token: string, method: string, path: string, body?: unknown) =>
    api.fetch(path, { method, token, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const refusedWith = async (res: Response, message: string) => {
    expect(res.status).toBe(403);
    expect((await res.json()).message).toBe(message);
  };

  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
    const create = async (name: string, role: string) => {
      const res = await api.fetch("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name, role }) });
      expect(res.status).toBe(201);
      return ((await res.json()) as { token: string }).token;
    };
    operator = await create("ops", "operator");
    viewer = await create("dash", "viewer");
  });
  afterAll(() => api?.stop());

  it("a viewer reads everything but tokens, and changes nothing", async () => {
    for (const path of ["/api/v1/services", "/api/v1/nodes", "/api/v1/machines", "/api/v1/tasks", "/api/v1/machines/drivers"]) {
      expect((await as(viewer, "GET", path)).status, path).toBe(200);
    }
    await refusedWith(await as(viewer, "GET", "/api/v1/tokens"), "a viewer token may not list tokens (admin only)");
    await refusedWith(
      await as(viewer, "POST", "/api/v1/services", { name: "v", image: "busybox" }),
      "a viewer token may only read; POST /api/v1/services changes state",
    );
    await refusedWith(
      await as(viewer, "POST", "/api/v1/tokens", { name: "mine", role: "admin" }),
      "a viewer token may only read; POST /api/v1/tokens changes state",
    );
    await refusedWith(
      await as(viewer, "DELETE", "/api/v1/tokens/ops"),
      "a viewer token may only read; DELETE /api/v1/tokens/:name changes state",
    );
    expect(((await (await api.fetch("/api/v1/services")).json()) as unknown[]).length).toBe(0);
  });

  it("an operator runs services but cannot touch tokens", async () => {
    const svc = await as(operator, "POST", "/api/v1/services", { name: "web", image: "busybox", replicas: 1 });
    expect(svc.status).toBe(201);
    expect((await as(operator, "POST", "/api/v1/services/web/scale", { replicas: 2 })).status).toBeLessThan(300);
    await refusedWith(await as(operator, "GET", "/api/v1/tokens"), "an operator token may not list, create or revoke tokens (admin only)");
    await refusedWith(
      await as(operator, "POST", "/api/v1/tokens", { name: "escalate", role: "admin" }),
      "an operator token may not list, create or revoke tokens (admin only)",
    );
    await refusedWith(
      await as(operator, "DELETE", "/api/v1/tokens/admin"),
      "an operator token may not list, create or revoke tokens (admin only)",
    );
    const names = ((await (await api.fetch("/api/v1/tokens")).json()) as { name: string }[]).map((t) => t.name);
    expect(names).toEqual(["admin", "ops", "dash"]);
  });

  it("an operator creates no machine that reaches into the control plane's host", async () => {
    await refusedWith(
      await as(operator, "POST", "/api/v1/machines", { name: "evil", driver: "netns" }),
      "an operator token may not create netns machines: they share the control plane's host (admin only)",
    );
    await refusedWith(
      await as(operator, "POST", "/api/v1/machines", {
        name: "evil",
        driver: "generic",
        options: { "generic-ip-address": "198.18.0.9", "generic-ssh-key": "/root/.ssh/id_ed25519" },
      }),
      "an operator token may not create a machine with host-path options (--generic-ssh-key; admin only)",
    );
    await refusedWith(
      await as(operator, "POST", "/api/v1/machines", { name: "evil", driver: "virtualbox", options: {} }),
      "an operator token may create a virtualbox machine only with --virtualbox-no-share (by default it shares the host's users directory; admin only)",
    );
    expect(((await (await api.fetch("/api/v1/machines")).json()) as unknown[]).length).toBe(0);
  });

  it("an operator adds and removes no control-plane replica (it is given the secrets key); a viewer lists them", async () => {
    for (const method of ["POST", "DELETE"])
      await refusedWith(
        await as(operator, method, "/api/v1/nodes/some-node/control-plane"),
        "an operator token may not add or remove control-plane replicas: a replica is given the secrets key (admin only)",
      );
    expect((await as(viewer, "GET", "/api/v1/control-plane/replicas")).status).toBe(200);
  });

  it("writes an audit event for every mutating request, refused or not, and none for reads", async () => {
    const events = await api.running.app.get(EventsService).since(0n, ["audit"], 1000);
    const summary = events.map((e) => `${e.data.role} ${e.action} ${e.data.status}`);
    expect(summary).toEqual(
      expect.arrayContaining([
        "admin POST /api/v1/tokens 201",
        "viewer POST /api/v1/services 403",
        "viewer DELETE /api/v1/tokens/:name 403",
        "operator POST /api/v1/services 201",
        "operator POST /api/v1/tokens 403",
        "operator POST /api/v1/machines 403",
      ]),
    );
    expect(events.find((e) => e.action === "DELETE /api/v1/tokens/:name")?.data).toMatchObject({
      token: "dash",
      path: "/api/v1/tokens/ops",
      params: { name: "ops" },
    });
    expect(events.some((e) => e.action.startsWith("GET "))).toBe(false);
  });

  it("ctl creates a token with a role and lists the roles", async () => {
    const env = { FLOTILLA_CONFIG_DIR: api.config.configDir };
    const created = await ctl(["token", "create", "readonly", "--role", "viewer"], env);
    expect(created.code, created.stderr).toBe(0);
    const ls = await ctl(["token", "ls"], env);
    expect(ls.stdout).toMatch(/readonly\s+viewer/);
    expect(ls.stdout).toMatch(/ops\s+operator/);
    const bad = await ctl(["token", "create", "x", "--role", "root"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("role");
    const asViewer = await ctl(["service", "ls"], { ...env, FLOTILLA_TOKEN: created.stdout.trim() });
    expect(asViewer.code, asViewer.stderr).toBe(0);
  });
});

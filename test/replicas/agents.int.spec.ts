// Two real `flotilla-api` processes configured with both replicas' URLs. An agent provisioned when
// only the first existed (FLOTILLA_API_URL names it alone) learns the list from a heartbeat reply,
// keeps it in its state dir, and after the first replica is killed reports to the second, also
// after a restart. The replica list is served to users, and browsers from one replica's origin may
// call the other (the console's failover).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ControlPlaneView, NodeView } from "@flotilla/api-types";
import { heartbeatsFromEnv, type Heartbeats } from "../../agent/src/heartbeat";
import { API_URLS_FILE } from "../../agent/src/heartbeat/api-urls-file";
import { startApiReplicas, type ApiReplicas } from "../support/api-replicas";

describe("agents and browsers over two API replicas", () => {
  let cp: ApiReplicas;
  const stateDir = mkdtempSync(join(tmpdir(), "flotilla-agent-state-"));
  let hb: Heartbeats | null = null;
  const logs: string[] = [];

  beforeAll(async () => {
    cp = await startApiReplicas(2, inject("redisUrl"), (urls) => ({
      FLOTILLA_PUBLIC_URLS: urls.join(","),
      FLOTILLA_AGENT_API_URL: urls.join(","),
      FLOTILLA_HEARTBEAT_MS: "300",
    }));
  });
  afterAll(async () => {
    await hb?.stop();
    await cp?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const get = async <T>(url: string, path: string): Promise<T> => {
    const res = await fetch(url + path, { headers: { authorization: `Bearer ${cp.token}` } });
    expect(res.status, `${url}${path}`).toBe(200);
    return (await res.json()) as T;
  };
  const until = async (what: string, cond: () => Promise<boolean> | boolean, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; agent log: ${logs.join(" | ")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const agent = () =>
    heartbeatsFromEnv(
      {
        // Provisioned before the second replica existed.
        FLOTILLA_API_URL: cp.urls[0],
        FLOTILLA_API_TOKEN: cp.token,
        FLOTILLA_ENGINE_URL: "https://198.19.220.2:2376",
        FLOTILLA_MACHINE_NAME: "early-node",
      },
      { all: () => [] },
      (m) => logs.push(m),
      stateDir,
      { dataPlane: "proxy" },
    );
  const lastSeen = async (url: string) =>
    (await get<NodeView[]>(url, "/api/v1/nodes")).find((n) => n.hostname === "early-node")?.lastHeartbeatAt;

  it("lists the replicas for users (a token is needed)", async () => {
    for (const url of cp.urls) {
      expect(await get<ControlPlaneView>(url, "/api/v1/control-plane")).toEqual({ apiUrls: cp.urls, agentApiUrls: cp.urls });
    }
    expect((await fetch(`${cp.urls[1]}/api/v1/control-plane`)).status).toBe(401);
    // The OpenAPI document describes the route and the heartbeat reply's list.
    const doc = await get<{ paths: Record<string, Record<string, { responses: Record<string, { content?: unknown }> }>> }>(
      cp.urls[1],
      "/api/docs-json",
    );
    expect(doc.paths["/api/v1/control-plane"]?.get).toBeDefined();
    expect(JSON.stringify(doc.paths["/api/v1/nodes/heartbeat"].post.responses)).toContain("apiUrls");
  });

  it("lets a page from another replica's origin call this one, and no other origin", async () => {
    const preflight = (origin: string) =>
      fetch(`${cp.urls[1]}/api/v1/services`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
    const ok = await preflight(cp.urls[0]);
    expect(ok.status).toBeLessThan(300);
    expect(ok.headers.get("access-control-allow-origin")).toBe(cp.urls[0]);
    expect(ok.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    const other = await preflight("http://198.19.220.9:8080");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const read = await fetch(`${cp.urls[1]}/api/v1/nodes`, { headers: { origin: cp.urls[0], authorization: `Bearer ${cp.token}` } });
    expect(read.headers.get("access-control-allow-origin")).toBe(cp.urls[0]);
  });

  it("an agent that knew one replica learns both, keeps the list, and fails over when the first dies", async () => {
    hb = agent();
    await until("the node registers", async () => (await lastSeen(cp.urls[0])) !== undefined);
    await until("the list is saved", () => existsSync(join(stateDir, API_URLS_FILE)));
    expect(JSON.parse(readFileSync(join(stateDir, API_URLS_FILE), "utf8"))).toMatchObject({ fromEnv: cp.urls[0], urls: cp.urls });
    expect(logs.join("\n")).toContain(`the control plane's replicas are now ${cp.urls.join(", ")}`);

    await cp.kill(0);
    const before = await lastSeen(cp.urls[1]);
    await until("beats reach the second replica", async () => (await lastSeen(cp.urls[1])) !== before);

    // A restart starts from the saved list, not from the env's single URL.
    await hb.stop();
    hb = agent();
    const restarted = await lastSeen(cp.urls[1]);
    await until("the restarted agent beats to the second replica", async () => (await lastSeen(cp.urls[1])) !== restarted);
  });
});

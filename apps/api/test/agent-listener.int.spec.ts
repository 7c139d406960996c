// FLOTILLA_AGENT_LISTEN: the API relays agents' connections from extra addresses to its own
// listener. On loopback (127.0.0.2) against the real API; with root, also on a bridge created
// after the relay started (as the netns driver creates it with the first machine), in
// 198.19.84.0/24. Nothing is ever sent to an address that is not on this host at that moment.
import { execFileSync } from "node:child_process";
import { connect, createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { relayTarget, startAgentListeners } from "../src/agent-listener/agent-listener";
import { loadConfig } from "../src/config/config";
import { JoinService } from "../src/join/join.service";
import { startTestApi, type TestApi } from "./support";
import { testBridge } from "../../../test/support/leftovers";

const root = process.getuid?.() === 0;

async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("FLOTILLA_AGENT_LISTEN configuration", () => {
  const env = { DATABASE_URL: "postgresql://u@127.0.0.1:5432/db", REDIS_URL: "redis://127.0.0.1:6379", HOME: "/home/u" };
  it("parses host:port lists and names a bad entry", () => {
    expect(loadConfig(env).agentListen).toEqual([]);
    expect(loadConfig({ ...env, FLOTILLA_AGENT_LISTEN: "198.18.0.1:8080, [fd00::1]:9090" }).agentListen).toEqual([
      { host: "198.18.0.1", port: 8080 },
      { host: "fd00::1", port: 9090 },
    ]);
    expect(() => loadConfig({ ...env, FLOTILLA_AGENT_LISTEN: "198.18.0.1" })).toThrow(
      'FLOTILLA_AGENT_LISTEN must be host:port entries separated by commas, got "198.18.0.1"',
    );
    expect(() => loadConfig({ ...env, FLOTILLA_AGENT_LISTEN: "198.18.0.1:0" })).toThrow(/FLOTILLA_AGENT_LISTEN/);
  });

  it("relays to loopback when the API listens on every address", () => {
    expect(relayTarget("0.0.0.0", 8080)).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(relayTarget("::", 8080)).toEqual({ host: "::1", port: 8080 });
    expect(relayTarget("127.0.0.1", 8080)).toEqual({ host: "127.0.0.1", port: 8080 });
  });
});

describe("agents reach the API through the relay", () => {
  let api: TestApi;
  let relayUrl: string;

  beforeAll(async () => {
    const port = await freePort("127.0.0.2");
    api = await startTestApi({ FLOTILLA_AGENT_LISTEN: `127.0.0.2:${port}` });
    relayUrl = `http://127.0.0.2:${port}`;
  });
  afterAll(async () => {
    await api?.stop();
  });

  it("answers health, the join and heartbeats at the relayed address", async () => {
    const health = await until("the relay", async () => {
      const res = await fetch(`${relayUrl}/api/v1/health`);
      return res.status === 200 ? ((await res.json()) as { status: string }) : undefined;
    });
    expect(health.status).toBe("ok");
    const { token: joinToken } = await api.running.app.get(JoinService).issue("relayed");
    const joined = await fetch(`${relayUrl}/api/v1/nodes/join`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ joinToken, hostname: "relayed" }),
    });
    expect(joined.status).toBe(200);
    const { token } = (await joined.json()) as { token: string };
    // Several beats in parallel, each on its own relayed connection.
    const beats = await Promise.all(
      [1, 2, 3].map(() =>
        fetch(`${relayUrl}/api/v1/nodes/heartbeat`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({
            hostname: "relayed",
            engineUrl: "https://198.18.0.9:2376",
            resources: { nanoCpus: 1e9, memoryBytes: 1 << 30 },
            labels: {},
            containers: [],
          }),
        }),
      ),
    );
    expect(beats.map((b) => b.status)).toEqual([200, 200, 200]);
  });

  it("stops relaying when the API closes", async () => {
    await api.stop();
    await expect(fetch(`${relayUrl}/api/v1/health`)).rejects.toThrow();
    api = undefined as unknown as TestApi;
  });
});

describe.skipIf(!root)("the relay waits for its address (the machines' bridge) and survives the bridge going and coming back", () => {
  const bridge = testBridge("flal");
  const gateway = "198.19.84.1";
  const bridgeUp = () => {
    execFileSync("ip", ["link", "add", bridge, "type", "bridge"]);
    execFileSync("ip", ["addr", "add", `${gateway}/24`, "dev", bridge]);
    execFileSync("ip", ["link", "set", bridge, "up"]);
  };
  const bridgeDown = () => {
    try {
      execFileSync("ip", ["link", "del", bridge], { stdio: "ignore" });
    } catch {
      // not there
    }
  };
  afterAll(bridgeDown);

  it("logs once while the address is missing, binds when it appears, keeps answering after the bridge is re-created", async () => {
    const target = createServer((s) => s.end("pong\n"));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const port = 40000 + (process.pid % 20000);
    const warnings: string[] = [];
    const logs: string[] = [];
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        const c = connect(port, gateway);
        let got = "";
        c.on("data", (d: Buffer) => (got += d.toString()))
          .on("end", () => resolve(got))
          .on("error", reject);
      });
    const relay = startAgentListeners([{ host: gateway, port }], relayTarget("127.0.0.1", (target.address() as AddressInfo).port), {
      retryMs: 50,
      logger: { warn: (m: string) => void warnings.push(m), log: (m: string) => void logs.push(m) },
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(warnings).toEqual([
        `agents' listener ${gateway}:${port}: the address does not exist on this host yet (the machines' bridge comes with the first netns machine); retrying every 0.05s`,
      ]);
      bridgeUp();
      await relay.bound();
      expect(logs).toEqual([`agents reach the API at ${gateway}:${port} (relayed to 127.0.0.1:${(target.address() as AddressInfo).port})`]);
      expect(await ask()).toBe("pong\n");
      // The last machine goes (the bridge with it), a new one comes: the same listener answers.
      bridgeDown();
      bridgeUp();
      expect(await ask()).toBe("pong\n");
    } finally {
      await relay.close();
      target.close();
    }
    // Closed: the address is still there (the bridge is), nobody listens on it.
    await expect(ask()).rejects.toThrow(/ECONNREFUSED/);
  });
});

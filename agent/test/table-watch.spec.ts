// The table long poll and the heartbeat-reply applier when a table is refused, against a tiny
// HTTP server on loopback standing in for the control plane. In one CI run a control plane sent
// every agent a network table naming nodeAddress "": the agent refused it, asked again after a
// heartbeat period, got the same table and logged the same refusal every second.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { newestTableApplier } from "../src/heartbeat/heartbeat";
import { watchTable } from "../src/heartbeat/table-watch";
import { checkNetworkTable } from "../src/overlay";

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in time`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A control plane answering GET /api/v1/nodes/networks with `current()`, holding polls for the version it has. */
async function networksServer(current: () => { version: string }) {
  const polls: string[] = [];
  const held = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const version = new URL(req.url!, "http://x").searchParams.get("version");
    polls.push(version ?? "-");
    const answer = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(current()));
    if (version !== current().version) return answer();
    held.add(answer);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    polls,
    held,
    /** Answers the held polls with the table now current. */
    release() {
      const waiting = [...held];
      held.clear();
      for (const a of waiting) a();
    },
    close() {
      for (const a of held) a();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe("a refused table", () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  function watch(url: string, apply: (t: { version?: unknown }) => Promise<void>, version: () => string | undefined) {
    const logs: string[] = [];
    const controller = new AbortController();
    const done = watchTable({
      what: "networks",
      path: "/api/v1/nodes/networks",
      urls: [url],
      token: "t",
      version,
      apply,
      retryMs: () => 10,
      log: (m) => logs.push(m),
      signal: controller.signal,
      waitMs: 30_000,
    });
    return { logs, stop: () => (controller.abort(), done) };
  }

  it("as no table at all: logged once, then the poll waits for a different table instead of fetching it again", async () => {
    let table: object = { version: "bad", nodeAddress: "", networks: [] };
    const cp = await networksServer(() => table as { version: string });
    let applied: string | undefined;
    const w = watch(
      cp.url,
      async (t) => {
        applied = checkNetworkTable(t).table.version;
      },
      () => applied,
    );
    stop = async () => {
      await w.stop();
      await cp.close();
    };
    // Asked with nothing held, refused, then asked naming the refused version: held there.
    await until(() => cp.held.size === 1, "the poll to wait at the control plane");
    expect(cp.polls).toEqual(["-", "bad"]);
    expect(w.logs).toEqual(['networks watch: table bad not applied: network table: nodeAddress "" is not an IPv4 address']);
    // A good table arrives at once, and is what the next poll holds.
    table = { version: "good", nodeAddress: "198.18.0.2", networks: [] };
    cp.release();
    await until(() => applied === "good" && cp.held.size === 1, "the good table to be applied");
    expect(cp.polls).toEqual(["-", "bad", "good"]);
    // A refusal after it: logged again, once; the agent keeps the good table meanwhile.
    table = { version: "bad2", networks: [{}] };
    cp.release();
    await until(() => cp.polls.at(-1) === "bad2" && cp.held.size === 1, "the poll to wait on the second refused table");
    expect(applied).toBe("good");
    expect(w.logs).toHaveLength(2);
    expect(w.logs[1]).toMatch(/^networks watch: table bad2 not applied: network table: nodeAddress undefined/);
  });

  it("that failed to apply (not its content): asked again at the heartbeat pace, the same failure logged once", async () => {
    const cp = await networksServer(() => ({ version: "v1", nodeAddress: "198.18.0.2", networks: [] }));
    let applied: string | undefined;
    let attempts = 0;
    const w = watch(
      cp.url,
      async (t) => {
        if (++attempts < 5) throw new Error("iptables: resource busy");
        applied = checkNetworkTable(t).table.version;
      },
      () => applied,
    );
    stop = async () => {
      await w.stop();
      await cp.close();
    };
    await until(() => applied === "v1" && cp.held.size === 1, "the table to apply on the fifth attempt");
    expect(cp.polls).toEqual(["-", "-", "-", "-", "-", "v1"]);
    expect(w.logs).toEqual(["networks watch: table v1 not applied: iptables: resource busy"]);
  });

  it("from heartbeat replies: the applier logs the same refusal once, and again after a table applied", async () => {
    const logs: string[] = [];
    const applied: string[] = [];
    // Synchronous, so a refusal is done before offer() returns.
    const applier = newestTableApplier<unknown>(
      "network",
      (t) => void applied.push(checkNetworkTable(t).table.version),
      (m) => logs.push(m),
    );
    stop = () => applier.stop();
    const bad = { version: "bad", nodeAddress: "", networks: [] };
    const offer = async (t: unknown) => {
      applier.offer(t);
      // One table at a time: the next offer waits for this one to be done.
      await new Promise((r) => setTimeout(r, 0));
    };
    for (let i = 0; i < 5; i++) await offer(bad);
    await offer({ version: "good", nodeAddress: "198.18.0.2", networks: [] });
    await offer(bad);
    expect(applied).toEqual(["good"]);
    expect(logs).toEqual([
      'heartbeat: network table bad not applied: network table: nodeAddress "" is not an IPv4 address',
      'heartbeat: network table bad not applied: network table: nodeAddress "" is not an IPv4 address',
    ]);
  });
});

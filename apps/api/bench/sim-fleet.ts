// A share of bench:control-plane's simulated agents, in a process of its own: agents on real
// hosts share no event loop, and with 5,000 of them in one process that loop's stalls (its own
// work: heartbeats and every launch request the worker sends) were part of every heartbeat
// round trip measured. The bench spawns BENCH_AGENT_PROCESSES of these and drives them over
// IPC, one request at a time each:
//   {op: "register"}           → {hostnames}: the range's agents started, each beat once
//   {op: "tokens", tokens}     → {}: beat from now on with these tokens (by hostname)
//   {op: "mark"}               → {}: figures from now on (beats, failures, event-loop delay)
//   {op: "report"}             → {beats, serverBeats, failed, containers, intervalMs, loopP99Ms, loopMaxMs}
//   {op: "stop"}               → {}: every agent stopped; the process then exits
// Usage (by the bench): tsx sim-fleet.ts API_URL ADMIN_TOKEN HEARTBEAT_MS FIRST LAST CONCURRENCY
import { monitorEventLoopDelay } from "node:perf_hooks";
import { SimAgent } from "../../../test/support/sim-agent";

const [apiUrl, token, heartbeatArg, firstArg, lastArg, concurrencyArg] = process.argv.slice(2);
if (!apiUrl || !token || !process.send) {
  process.stderr.write("sim-fleet: started by bench:control-plane only (an IPC channel and its arguments)\n");
  process.exit(2);
}
const heartbeatMs = Number(heartbeatArg);
const first = Number(firstArg);
const last = Number(lastArg);
const concurrency = Number(concurrencyArg);

const agents: SimAgent[] = [];
const beatsBefore = new Map<SimAgent, number>();
const serverBeatsBefore = new Map<SimAgent, number>();
let failedBefore = 0;
let markedAt = Infinity;
const loop = monitorEventLoopDelay({ resolution: 20 });

async function register(): Promise<{ hostnames: string[] }> {
  let next = first;
  // Agents join concurrently, as a fleet booting does (one after another, registration time
  // was the sum of their latencies).
  const joining = async () => {
    for (let i = next++; i <= last; i = next++) {
      agents.push(
        await new SimAgent({
          hostname: `bench-${i}`,
          apiUrl,
          token,
          heartbeatMs,
          images: ["busybox:latest"],
          labels: { zone: `z${i % 3}` },
          memoryBytes: 64 * 1024 ** 3,
          nanoCpus: 64e9,
          // BENCH_AGENT_WATCH=1: long polls for the ingress and overlay tables, as real agents hold.
          watchTables: process.env.BENCH_AGENT_WATCH === "1",
        }).start(),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, joining));
  const unregistered = agents.filter((a) => !a.nodeId).length;
  if (unregistered) throw new Error(`${unregistered} agents got no node id from their first heartbeat`);
  return { hostnames: agents.map((a) => a.opts.hostname) };
}

function report() {
  const beats = agents.flatMap((a) => a.heartbeatMs.slice(beatsBefore.get(a) ?? 0));
  const serverBeats = agents.flatMap((a) => a.heartbeatServerMs.slice(serverBeatsBefore.get(a) ?? 0));
  return {
    beats,
    serverBeats,
    slowBeats: agents.flatMap((a) => a.slowBeats.filter((b) => b.sentAt >= markedAt)),
    failed: agents.reduce((n, a) => n + a.heartbeatFailures, 0) - failedBefore,
    containers: agents.reduce((n, a) => n + a.running().length, 0),
    intervalMs: Math.max(...agents.map((a) => a.intervalMs)),
    loopP99Ms: Math.round(loop.percentile(99) / 1e6),
    loopMaxMs: Math.round(loop.max / 1e6),
  };
}

type Request = { id: number; op: "register" | "tokens" | "mark" | "report" | "stop"; tokens?: Record<string, string> };

async function answer(req: Request): Promise<unknown> {
  switch (req.op) {
    case "register":
      return register();
    case "tokens":
      for (const a of agents) a.opts.token = req.tokens![a.opts.hostname] ?? a.opts.token;
      return {};
    case "mark":
      for (const a of agents) {
        beatsBefore.set(a, a.heartbeatMs.length);
        serverBeatsBefore.set(a, a.heartbeatServerMs.length);
      }
      failedBefore = agents.reduce((n, a) => n + a.heartbeatFailures, 0);
      markedAt = Date.now();
      loop.enable();
      return {};
    case "report":
      return report();
    case "stop":
      await Promise.all(agents.map((a) => a.stop()));
      return {};
  }
}

process.on("message", (req: Request) => {
  answer(req).then(
    (result) => process.send!({ id: req.id, result }, () => (req.op === "stop" ? process.exit(0) : undefined)),
    (e: Error) => process.send!({ id: req.id, error: e.message }),
  );
});
// The bench gone (killed): nothing to report to.
process.on("disconnect", () => process.exit(0));

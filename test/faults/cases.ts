// The fault cases of issue 10, each done for real to a FaultLab and measured on the machines
// (container ids and start times as their engines report them), with the keys the issue names.
// Each case leaves the service converged for the next, or says it did not.
import { FaultLab, pollIngress, sleep, until, type Container } from "./lab";

export interface CaseResult {
  name: string;
  [key: string]: string | number | boolean | null;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** Containers of `before` that are gone or were started again since: replaced or restarted. */
export function changedContainers(before: readonly Container[], after: readonly Container[]): Container[] {
  const now = new Map(after.map((c) => [c.id, c.startedAt]));
  return before.filter((c) => now.get(c.id) !== c.startedAt);
}

export interface Timing {
  /** How long a converged state must hold to count as recovered (covers the down window and a sweep). */
  settleMs: number;
  /** Give up waiting for convergence after this long. */
  limitMs: number;
}

/**
 * Waits until the service has converged and stays so for `settleMs`; returns when that last
 * began (ms since epoch), or undefined when it never settled within `limitMs`.
 */
export async function settled(lab: FaultLab, service: string, n: number, t: Timing): Promise<number | undefined> {
  const end = Date.now() + t.limitMs;
  let since: number | undefined;
  while (Date.now() < end) {
    const ok = await lab.converged(service, n).catch(() => false);
    if (!ok) since = undefined;
    else {
      since ??= Date.now();
      if (Date.now() - since >= t.settleMs) return since;
    }
    await sleep(250);
  }
  return undefined;
}

export async function createService(lab: FaultLab, service: string, replicas: number, t: Timing): Promise<void> {
  const r = await lab.ctl([
    "service",
    "create",
    "--detach",
    "--name",
    service,
    "--replicas",
    String(replicas),
    "--publish",
    "8080:80",
    lab.image,
    "sh",
    "-c",
    "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
  ]);
  if (r.code !== 0) throw new Error(`ctl service create: ${r.stderr}`);
  if (!(await settled(lab, service, replicas, t))) throw new Error(`${service} did not converge at ${replicas}`);
  // Every machine's mesh answers before a case starts measuring it.
  for (const m of lab.live()) if (!(await until(async () => lab.get(m), 60_000))) throw new Error(`${m}:8080 does not answer`);
}

/** Postgres stopped for `outageMs`, then started: nothing running may be touched. */
export async function postgresOutage(lab: FaultLab, service: string, n: number, outageMs: number, t: Timing): Promise<CaseResult> {
  const before = await lab.containers();
  const ingress = pollIngress(lab, lab.live());
  await lab.stopPostgres();
  await sleep(outageMs);
  const ingressDuring = await ingress.stop();
  const back = Date.now();
  await lab.startPostgres();
  const recoveredAt = await settled(lab, service, n, t);
  const after = await lab.containers();
  return {
    name: "postgres-outage",
    outageS: seconds(outageMs),
    containersReplaced: changedContainers(before, after).length,
    servingDuringOutage: ingressDuring.failures === 0,
    failedRequests: ingressDuring.failures,
    requests: ingressDuring.requests,
    recoveredS: recoveredAt === undefined ? null : seconds(recoveredAt - back),
  };
}

/** Redis killed -9 and started empty, then a scale: it must roll out within a sweep period. */
export async function redisRestart(lab: FaultLab, service: string, from: number, to: number, t: Timing): Promise<CaseResult> {
  await lab.killRedis(true);
  await lab.stack("up");
  // Redis is back once the API sees it answer (its connections reconnect on their own schedule).
  await until(async () => (await fetch(`${lab.apiUrl}/api/v1/health`, { signal: AbortSignal.timeout(2000) })).ok, 30_000);
  const scaled = await lab.ctl(["service", "scale", "--detach", `${service}=${to}`]);
  const at = Date.now();
  // A connection still reconnecting answers 503 "the change is saved and will roll out": that
  // change must roll out by itself too.
  const saved = scaled.code === 0 || scaled.stderr.includes("the change is saved and will roll out");
  const done = saved ? await until(async () => lab.converged(service, to), t.limitMs) : undefined;
  const resumeS = done ? seconds(Date.now() - at) : null;
  // Left as asked for the next case, whatever happened (a stuck control plane is restarted).
  if (!done) {
    await lab.killApi();
    await lab.startApi();
    await settled(lab, service, to, t);
  }
  return { name: "redis-restart", from, to, scaleAccepted: saved, answered503: scaled.code !== 0, resumeS, lostChanges: done ? 0 : 1 };
}

/** kill -9 of one machine's agent: its supervisor starts it again; no container may restart. */
export async function agentKill(lab: FaultLab, service: string, n: number, machine: string, t: Timing): Promise<CaseResult> {
  const before = await lab.containers();
  const pid = lab.agentPid(machine);
  process.kill(pid, "SIGKILL");
  const killedAt = Date.now();
  const back = await until(async () => lab.agentPid(machine) !== pid && (await lab.containers([machine])) && true, 60_000);
  const backS = back ? seconds(Date.now() - killedAt) : null;
  const recoveredAt = await settled(lab, service, n, t);
  const after = await lab.containers();
  const changed = changedContainers(before, after);
  const mine = before.filter((c) => c.machine === machine);
  return {
    name: "agent-kill",
    containersRestarted: changed.length,
    reAdopted:
      back !== undefined && recoveredAt !== undefined && mine.every((c) => after.some((a) => a.id === c.id && a.startedAt === c.startedAt)),
    agentBackS: backS,
  };
}

/** kill -9 of the API and worker while a scale to `to` is being worked on, then a restart. */
export async function apiKill(lab: FaultLab, service: string, from: number, to: number, t: Timing): Promise<CaseResult> {
  const r = await lab.ctl(["service", "scale", "--detach", `${service}=${to}`]);
  if (r.code !== 0) throw new Error(`ctl service scale: ${r.stderr}`);
  // Mid-scale: some new containers exist, not all.
  await until(async () => (await lab.runningTasks(service)).length > from, 60_000, 100);
  const runningAtKill = (await lab.runningTasks(service).catch(() => [])).length;
  await lab.killApi();
  await lab.startApi();
  const at = Date.now();
  const doubled = new Set<string>();
  const done = await until(async () => {
    const containers = await lab.containers();
    const perSlot = new Map<string, number>();
    for (const c of containers) perSlot.set(c.slot, (perSlot.get(c.slot) ?? 0) + 1);
    for (const [slot, k] of perSlot) if (k > 1) doubled.add(slot);
    return lab.converged(service, to);
  }, t.limitMs);
  const convergeS = done ? seconds(Date.now() - at) : null;
  return { name: "api-kill", from, to, runningAtKill, convergeS, duplicateSlots: doubled.size };
}

/**
 * A host killed while a scale-down is in flight: its tasks must be replaced within 20 s
 * (replaceS: slots 1..to running on live machines). convergedS also waits for the scale-down's
 * own stops on the live machines, which take the tasks' stop grace period.
 */
export async function hostKillInFlight(
  lab: FaultLab,
  service: string,
  from: number,
  to: number,
  machine: string,
  t: Timing,
): Promise<CaseResult> {
  const r = await lab.ctl(["service", "scale", "--detach", `${service}=${to}`]);
  if (r.code !== 0) throw new Error(`ctl service scale: ${r.stderr}`);
  // In flight: the scale-down has begun (fewer running), not finished.
  await until(async () => (await lab.runningTasks(service)).length < from, 30_000, 50);
  const killedAt = Date.now();
  await lab.killHost(machine);
  const replaced = await until(async () => lab.replaced(service, to), t.limitMs, 100);
  const replaceS = replaced ? seconds(Date.now() - killedAt) : null;
  const done = await until(async () => lab.converged(service, to), t.limitMs);
  return { name: "host-kill-in-flight", from, to, replaceS, convergedS: done ? seconds(Date.now() - killedAt) : null };
}

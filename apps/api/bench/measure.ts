// What the API benches measure alike: latency percentiles, a process's CPU time, and the
// machine's load average (the machine is shared: a figure means little without it).
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { createHash } from "node:crypto";

/**
 * The node options the launchers start the control plane's processes with (deploy/systemd,
 * deploy/local, deploy/ha-local): the benches measure what is deployed. Extra ones for a run come
 * from BENCH_API_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
 */
export function controlPlaneNodeArgs(): string[] {
  return ["--max-semi-space-size=64", ...(process.env.BENCH_API_NODE_ARGS ?? "").split(/\s+/).filter(Boolean)];
}

/** The p-th percentile (nearest rank, 0 < p ≤ 100) of `xs`; NaN for none. Sorts a copy. */
export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** p50, p99 and max of `xs`, rounded to 0.1 ms. */
export function latencySummary(xs: readonly number[]): { p50: number; p99: number; max: number } {
  const r = (n: number) => Math.round(n * 10) / 10;
  return { p50: r(percentile(xs, 50)), p99: r(percentile(xs, 99)), max: r(xs.length ? Math.max(...xs) : NaN) };
}

/** CPU seconds a process has used (Linux /proc), or NaN where that cannot be read. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds a server and its children have used: its own, its ended children's, and its live
 * children's (Postgres: the postmaster and every backend). NaN where that cannot be read.
 */
export function treeCpuSeconds(pid: number | undefined): number {
  const stat = (p: number | string) => readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
  try {
    const own = stat(pid!);
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean)) {
      try {
        const c = stat(child);
        ticks += Number(c[11]) + Number(c[12]);
      } catch {
        // Ended since the list was read: counted in the parent's children's time.
      }
    }
    return ticks / 100;
  } catch {
    return NaN;
  }
}

/** The pid a pid file names (its first line), or undefined. */
export function pidFromFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The 1, 5 and 15 minute load averages, two decimals. */
export function loadAverage(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

let _sink = 0;

/**
 * Milliseconds this process takes over a fixed piece of JavaScript work (JSON and hashing of a
 * task-sized object, as the control plane does all day), the best of three: a yardstick of how
 * fast this machine runs code at that moment. On a shared host the same bench's CPU seconds vary
 * with it; a slow run with a slow yardstick was a slow machine, not slower code.
 */
export function cpuReferenceMs(): number {
  const sample = { id: "8d0e4f4e-7f3a-4a53-9f0e-1c2b3a4d5e6f", state: "RUNNING", labels: { a: "b", zone: "z1" }, ports: [80, 443] };
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    let h = 0;
    for (let i = 0; i < 40_000; i++) {
      const text = JSON.stringify({ ...sample, n: i });
      h = (h + (JSON.parse(text) as { n: number }).n + createHash("sha1").update(text).digest()[0]!) | 0;
    }
    _sink ^= h; // the work's result is kept, so none of it can be left out
    best = Math.min(best, performance.now() - started);
  }
  return Math.round(best);
}

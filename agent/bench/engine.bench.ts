// Container start+exit latency: `npm run bench:engine` (add `-- --json` for a machine-readable last
// line, `-- --runs N` to change the sample size).
//
// Every engine runs /bin/true from the same busybox rootfs, in paired, interleaved rounds (each
// round runs every engine once, in a rotating order, so drift in the machine hits all alike).
// Each sample is the wall time from spawning the command to its exit, as the agent would see it:
//
//   fork+exec        /bin/true directly (the floor: Node's spawn + exec)
//   unshare+chroot   util-linux unshare -pfmiun + chroot (namespaces, no cgroup, no mounts)
//   shim             flotilla-shim run --foreground (cgroup, 5 namespaces, /proc /sys /dev, pivot_root,
//                    caps, seccomp, state.json), rootfs bound read-only like the OCI bundles
//   shim+overlay     the same with an overlay rootfs (fresh upper/work per run), as the agent runs it
//   crun, runc       `crun run` / `runc run` on bundles from `crun spec` / `runc spec`, readonly root
//
// State directories of all engines live on a tmpfs, as /run does on a normal host. Goal: shim ≤ 0.5×
// crun. Other rows (e.g. the agent's Engine API create+start+wait) plug in as BenchRows through
// runEngineBench({ extraRows }); measureCommand() times any command the same way.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs } from "../test/support/busybox-rootfs";
import { buildShim } from "../test/support/shim";

/** One engine to measure: run(i) must start a container, wait for its exit and throw on failure. */
export interface BenchRow {
  readonly name: string;
  /** Untimed work before sample i (e.g. fresh directories). */
  prepare?(i: number): void | Promise<void>;
  /** The timed part. */
  run(i: number): void | Promise<void>;
  /** Untimed work after sample i. */
  cleanup?(i: number): void | Promise<void>;
}

export interface BenchOptions {
  readonly runs: number;
  readonly warmup: number;
}

export interface RowStats {
  readonly name: string;
  readonly samples: readonly number[];
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
}

/** A row that spawns argv(i) and waits for it; a non-zero exit fails the benchmark. */
export function commandRow(
  name: string,
  argv: (i: number) => readonly string[],
  hooks: Pick<BenchRow, "prepare" | "cleanup"> = {},
): BenchRow {
  return {
    name,
    ...hooks,
    run(i) {
      const [cmd, ...args] = argv(i);
      const r = spawnSync(cmd!, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
      if (r.status !== 0) throw new Error(`${name}: ${[cmd, ...args].join(" ")} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
    },
  };
}

const quantile = (sorted: readonly number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** "row/crun" median ratios for shim, runc and (when measured) agent: the figures with goals. */
export function engineRatios(stats: readonly RowStats[]): Record<string, number | null> {
  const byName = Object.fromEntries(stats.map((s) => [s.name, s]));
  const ratio = (a?: RowStats, b?: RowStats) => (a && b ? Number((a.medianMs / b.medianMs).toFixed(3)) : null);
  const ratios: Record<string, number | null> = {
    "shim/crun": ratio(byName.shim, byName.crun),
    "runc/crun": ratio(byName.runc, byName.crun),
  };
  if (byName.agent) ratios["agent/crun"] = ratio(byName.agent, byName.crun);
  return ratios;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Measures rows in interleaved rounds after `warmup` unrecorded rounds. */
export async function measureRows(rows: readonly BenchRow[], opts: BenchOptions): Promise<RowStats[]> {
  const samples = rows.map(() => [] as number[]);
  let i = 0;
  for (let round = 0; round < opts.warmup + opts.runs; round++) {
    for (let k = 0; k < rows.length; k++) {
      const idx = (k + round) % rows.length; // rotate who goes first
      const row = rows[idx]!;
      await row.prepare?.(i);
      const t0 = process.hrtime.bigint();
      await row.run(i);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      await row.cleanup?.(i);
      if (round >= opts.warmup) samples[idx]!.push(ms);
      i++;
    }
  }
  return rows.map((row, idx) => {
    const sorted = [...samples[idx]!].sort((a, b) => a - b);
    return { name: row.name, samples: sorted, medianMs: median(sorted), p10Ms: quantile(sorted, 0.1), p90Ms: quantile(sorted, 0.9) };
  });
}

/** Median wall time (ms) of running a command to completion. */
export async function measureCommand(argv: readonly string[], opts: BenchOptions = { runs: 30, warmup: 3 }): Promise<RowStats> {
  const [stats] = await measureRows([commandRow(argv.join(" "), () => argv)], opts);
  return stats!;
}

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const firstLine = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0]!.trim();

/** An OCI bundle for runtime (crun or runc) from its own `spec`, running /bin/true read-only. */
function ociBundle(runtime: string, dir: string, rootfs: string): string {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(runtime, ["spec"], { cwd: dir });
  const spec = JSON.parse(fs.readFileSync(join(dir, "config.json"), "utf8"));
  spec.process.terminal = false;
  spec.process.args = ["/bin/true"];
  spec.root = { path: rootfs, readonly: true };
  fs.writeFileSync(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  return dir;
}

interface Mounted {
  readonly path: string;
  readonly what: string;
}

function mount(args: string[], path: string, what: string, mounted: Mounted[]): void {
  fs.mkdirSync(path, { recursive: true });
  execFileSync("mount", [...args, path]);
  mounted.push({ path, what });
}

/** What extra rows get to work with. */
export interface EngineBenchContext {
  /** The busybox rootfs every engine runs /bin/true from. */
  readonly rootfs: string;
  /** A scratch directory on tmpfs, removed after the run. */
  readonly stateDir: string;
  readonly shimBin: string;
}

export interface EngineBenchOptions {
  readonly runs?: number;
  readonly warmup?: number;
  /** Print the machine-readable summary as the last line. */
  readonly json?: boolean;
  /** More rows, e.g. the agent's Engine API create+start+wait; measured with the others. */
  readonly extraRows?: (ctx: EngineBenchContext) => BenchRow[] | Promise<BenchRow[]>;
}

/** Runs the whole comparison and prints the table (and the JSON line); returns the stats. */
export async function runEngineBench(options: EngineBenchOptions = {}): Promise<RowStats[]> {
  const runs = options.runs ?? 30;
  const warmup = options.warmup ?? 3;
  const log = (msg: string) => process.stderr.write(`${msg}\n`);
  if (process.getuid?.() !== 0) throw new Error("bench:engine needs root (namespaces, cgroups, mounts)");

  const shimBin = buildShim();
  const rootfs = busyboxRootfs();
  const work = fs.mkdtempSync(join(tmpdir(), "flotilla-bench-engine-"));
  const mounted: Mounted[] = [];
  try {
    mount(["-t", "tmpfs", "-o", "mode=700", "tmpfs"], join(work, "state"), "tmpfs for state dirs", mounted);
    const state = join(work, "state");
    const rows: BenchRow[] = [
      commandRow("fork+exec", () => ["/bin/true"]),
      commandRow("unshare+chroot", () => ["unshare", "-pfmiun", "chroot", rootfs, "/bin/true"]),
    ];
    const shimArgs = (id: string, i: number) => [
      "run",
      "--foreground",
      "--id",
      `${id}-${process.pid}-${i}`,
      "--state-dir",
      join(state, `${id}-${i}`),
      "--hostname",
      "bench",
    ];
    rows.push(
      commandRow("shim", (i) => [shimBin, ...shimArgs("bench", i), "--rootfs", rootfs, "--readonly-rootfs", "--", "/bin/true"], {
        cleanup: (i) => fs.rmSync(join(state, `bench-${i}`), { recursive: true, force: true }),
      }),
    );
    const ov = (i: number) => join(state, `ov-${i}`);
    rows.push(
      commandRow(
        "shim+overlay",
        (i) => [
          shimBin,
          ...shimArgs("ov", i),
          "--rootfs-lower",
          rootfs,
          "--upper",
          join(ov(i), "upper"),
          "--work",
          join(ov(i), "work"),
          "--",
          "/bin/true",
        ],
        {
          prepare: (i) => ["upper", "work"].forEach((d) => fs.mkdirSync(join(ov(i), d), { recursive: true })),
          cleanup: (i) => fs.rmSync(ov(i), { recursive: true, force: true }),
        },
      ),
    );

    const versions: Record<string, string> = {};
    if (has("crun")) {
      // crun 1.8 rejects a hybrid layout whose hugetlb controller sits in the v2 tree: mount it as v1
      const hybrid = fs.existsSync("/sys/fs/cgroup/unified") && !fs.existsSync("/sys/fs/cgroup/hugetlb");
      if (hybrid) mount(["-t", "cgroup", "-o", "hugetlb", "cgroup"], join(work, "hugetlb"), "cgroup v1 hugetlb for crun", mounted);
      const bundle = ociBundle("crun", join(work, "crun-bundle"), rootfs);
      const crunRoot = join(state, "crun");
      versions.crun = firstLine("crun", ["--version"]);
      rows.push(commandRow("crun", (i) => ["crun", "--root", crunRoot, "run", "--bundle", bundle, `bench-crun-${process.pid}-${i}`]));
    }
    if (has("runc")) {
      const bundle = ociBundle("runc", join(work, "runc-bundle"), rootfs);
      const runcRoot = join(state, "runc");
      versions.runc = firstLine("runc", ["--version"]);
      rows.push(commandRow("runc", (i) => ["runc", "--root", runcRoot, "run", "--bundle", bundle, `bench-runc-${process.pid}-${i}`]));
    }
    if (options.extraRows) rows.push(...(await options.extraRows({ rootfs, stateDir: state, shimBin })));

    log(`engine bench: ${runs} interleaved rounds after ${warmup} warm-up rounds; ${Object.values(versions).join(", ")}`);
    const stats = await measureRows(rows, { runs, warmup });
    const byName = Object.fromEntries(stats.map((s) => [s.name, s]));
    const crun = byName.crun?.medianMs;
    const fmt = (n: number) => n.toFixed(2).padStart(7);
    console.log(`${"engine".padEnd(16)} ${"median".padStart(7)} ${"p10".padStart(7)} ${"p90".padStart(7)}   vs crun`);
    for (const s of stats) {
      const ratio = crun ? `${(s.medianMs / crun).toFixed(2)}×` : "";
      console.log(`${s.name.padEnd(16)} ${fmt(s.medianMs)} ${fmt(s.p10Ms)} ${fmt(s.p90Ms)}   ${ratio}`);
    }
    const ratios = engineRatios(stats);
    const goal = ratios["shim/crun"];
    console.log(`ms per start+exit, median of ${runs}; shim/crun ${goal ?? "n/a"} (goal ≤ 0.5), runc/crun ${ratios["runc/crun"] ?? "n/a"}`);
    if (options.json) {
      const medians = Object.fromEntries(stats.map((s) => [s.name, Number(s.medianMs.toFixed(3))]));
      console.log(JSON.stringify({ runs, medians, ratios, versions }));
    }
    return stats;
  } finally {
    for (const m of mounted.reverse()) {
      try {
        execFileSync("umount", [m.path]);
      } catch (err) {
        log(`bench: could not unmount ${m.what} at ${m.path}: ${(err as Error).message}`);
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const runsArg = argv.indexOf("--runs");
  const runs = runsArg >= 0 ? Number(argv[runsArg + 1]) : 30;
  runEngineBench({ runs, json: argv.includes("--json") }).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

// Runs drivers against the recording stand-ins in test/standins: a temp dir per test with the
// call log, the stand-ins' state, the machine store, a lock dir, an image cache and an ISO.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, expect } from "vitest";
import { UnavailableError } from "@flotilla/core";
import { createExecRunner, type CommandRunner, type DriverContext, type DriverEvent, type DriverTiming } from "@flotilla/drivers";

export const standinsDir = join(__dirname, "..", "..", "..", "test", "standins");

// Short polls, but limits with headroom: every stand-in call is a Node start, which takes
// hundreds of ms on a loaded machine. Tests of the time limits set their own small ones.
export const fastTiming: Partial<DriverTiming> = {
  pollIntervalMs: 5,
  ipTimeoutMs: 20_000,
  stopTimeoutMs: 20_000,
  commandTimeoutMs: 30_000,
};

export interface LogLine {
  tool: string;
  argv: string[];
  caller?: string;
  stdinBytes?: number;
}

export interface Harness {
  dir: string;
  logPath: string;
  stateDir: string;
  lockDir: string;
  cacheDir: string;
  /** A fake Flotilla guest image directory: disk.vmdk, disk.vhdx (a few bytes each) and manifest.json (1200 MB disk, 256 MB minimum memory). */
  image: string;
  storeDir(machine: string): string;
  /** A runner that finds the stand-ins first on PATH; `env` adds STANDIN_* settings. */
  runner(env?: Record<string, string>): CommandRunner;
  /** A runner whose PATH holds only node: no VBoxManage, no powershell.exe. */
  bareRunner(): CommandRunner;
  ctx(machine: string, env?: Record<string, string>, extra?: Partial<DriverContext>): DriverContext;
  /** Everything logged so far. */
  log(): LogLine[];
  /** argv of every call so far (optionally of one caller). */
  calls(caller?: string): string[][];
  clearLog(): void;
  events: DriverEvent[];
  /** Saves the stand-ins' state and the machine store, to restore before each test of a group. */
  snapshot(): void;
  restore(): void;
  cleanup(): void;
}

export function makeHarness(): Harness {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-drivers-"));
  const logPath = join(dir, "calls.jsonl");
  const stateDir = join(dir, "standin-state");
  const lockDir = join(dir, "locks");
  const cacheDir = join(dir, "cache");
  mkdirSync(cacheDir);
  const image = join(dir, "guest-image");
  mkdirSync(image);
  writeFileSync(join(image, "disk.vmdk"), "fake stream-optimized VMDK\n");
  writeFileSync(join(image, "disk.vhdx"), "fake dynamic VHDX\n");
  writeFileSync(join(image, "manifest.json"), JSON.stringify({ version: "1", kernel: "6.1.0-test", diskMb: 1200, minMemoryMb: 256 }));
  const events: DriverEvent[] = [];

  // Only what the test sets: STANDIN_* from the developer's shell must not leak in.
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("STANDIN_") && k !== "FLOTILLA_STANDIN_LOG") baseEnv[k] = v;

  const h: Harness = {
    dir,
    logPath,
    stateDir,
    lockDir,
    cacheDir,
    image,
    events,
    storeDir: (machine) => join(dir, "machines", machine),
    runner: (env = {}) =>
      createExecRunner({
        env: { ...baseEnv, FLOTILLA_STANDIN_LOG: logPath, STANDIN_STATE: stateDir, ...env },
        pathPrepend: [standinsDir, dirname(process.execPath)],
      }),
    bareRunner: () => createExecRunner({ env: { ...baseEnv, PATH: dirname(process.execPath) } }),
    ctx: (machine, env = {}, extra = {}) => ({
      machineName: machine,
      storeDir: h.storeDir(machine),
      runner: h.runner(env),
      lockDir,
      cacheDir,
      timing: fastTiming,
      progress: (e) => events.push(e),
      ...extra,
    }),
    log: () =>
      existsSync(logPath)
        ? readFileSync(logPath, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as LogLine)
        : [],
    calls: (caller) =>
      h
        .log()
        .filter((l) => caller === undefined || l.caller === caller)
        .map((l) => l.argv),
    clearLog: () => rmSync(logPath, { force: true }),
    snapshot: () => {
      rmSync(join(dir, "snapshot"), { recursive: true, force: true });
      for (const sub of ["standin-state", "machines"]) {
        if (existsSync(join(dir, sub))) cpSync(join(dir, sub), join(dir, "snapshot", sub), { recursive: true });
      }
    },
    restore: () => {
      for (const sub of ["standin-state", "machines"]) {
        rmSync(join(dir, sub), { recursive: true, force: true });
        if (existsSync(join(dir, "snapshot", sub))) cpSync(join(dir, "snapshot", sub), join(dir, sub), { recursive: true });
      }
      rmSync(logPath, { force: true });
      events.length = 0;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  return h;
}

/** A new harness (fresh stand-in state) for every test of the enclosing describe; `set` receives it. */
export function freshHarnessPerTest(set: (h: Harness) => void): void {
  let h: Harness;
  beforeEach(() => {
    h = makeHarness();
    set(h);
  });
  afterEach(() => h.cleanup());
}

/**
 * One harness for the enclosing describe: `create` makes one machine before all its tests, and
 * the stand-ins' state and the store are restored before each, so every test starts from that
 * machine without paying for a create.
 */
export function createdOncePerGroup(set: (h: Harness) => void, create: () => Promise<void>): void {
  let h: Harness;
  beforeAll(async () => {
    h = makeHarness();
    set(h);
    await create();
    h.snapshot();
  }, 60_000);
  beforeEach(() => h.restore());
  afterAll(() => h.cleanup());
}

/** The PowerShell command of each powershell.exe call (argv is -NoProfile -NonInteractive <command>). */
export function psCommands(calls: string[][]): string[] {
  return calls.map((argv) => {
    if (argv.length !== 3 || argv[0] !== "-NoProfile" || argv[1] !== "-NonInteractive")
      throw new Error(`unexpected argv ${JSON.stringify(argv)}`);
    return argv[2];
  });
}

/** Replaces the free SSH port chosen at create time, so sequences can be compared exactly. */
export function normalizePort(calls: string[][]): { calls: string[][]; port?: number } {
  let port: number | undefined;
  const out = calls.map((argv) =>
    argv.map((a) =>
      a.replace(/^ssh,tcp,127\.0\.0\.1,(\d+),,22$/, (_, p: string) => {
        port = Number(p);
        return "ssh,tcp,127.0.0.1,<port>,,22";
      }),
    ),
  );
  return { calls: out, port };
}

export async function expectRejects(p: Promise<unknown>): Promise<Error & { kind?: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { kind?: string };
  }
  throw new Error("expected the promise to reject");
}

/** A driver bound with `bareRunner` fails its preCreateCheck with an UnavailableError saying its tool is missing. */
export async function expectToolMissing(d: { preCreateCheck(): Promise<void> }, message: string): Promise<void> {
  const err = await expectRejects(d.preCreateCheck());
  expect(err).toBeInstanceOf(UnavailableError);
  expect(err.message).toBe(message);
}

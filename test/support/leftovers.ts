// What a killed test run leaves in the kernel: the bridges its netns machines made (each holding
// a fixed /24 that the next run's machines need) and those machines' namespaces. Every test
// bridge is named by testBridge(), which records it, with the process that owns it, in
// REGISTRY; the sweep removes only recorded bridges whose owner no longer runs. Nothing else is
// ever touched: a name alone proves nothing (`flmach0`, the netns driver's default bridge, shares
// its first letters with test bridges), and a run going on beside this one keeps its own.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killMachineProcesses } from "../../libs/drivers/src/netns-host";

/** One file per test bridge: `{ pid, tag }` of the process that named it. Cleared by a reboot, as the bridges are. */
export const REGISTRY = process.env.FLOTILLA_TEST_BRIDGE_REGISTRY ?? "/run/flotilla-test-bridges";

interface BridgeRecord {
  pid: number;
  tag: string;
}

/**
 * The bridge a test file's machines use, `<prefix><tag>` (the tag defaults to this process's pid
 * in base 36; the file's machines' names end in `-<tag>`), recorded as owned by `owner`.
 */
export function testBridge(prefix: string, tag = process.pid.toString(36), owner = process.pid): string {
  const name = `${prefix}${tag}`.slice(0, 15);
  try {
    mkdirSync(REGISTRY, { recursive: true });
    writeFileSync(join(REGISTRY, name), JSON.stringify({ pid: owner, tag } satisfies BridgeRecord));
  } catch {
    // Not root: such a run makes no bridge either.
  }
  return name;
}

/** Deletes what a failed run may leave behind: machines' namespaces and the bridge, each maybe gone already. */
export function removeLeftovers(machines: readonly string[], bridge?: string): void {
  const commands = [...machines.map((m) => ["netns", "del", `flt-${m}`]), ...(bridge ? [["link", "del", bridge]] : [])];
  for (const args of commands) {
    try {
      execFileSync("ip", args, { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
}

export function running(pid: number): boolean {
  try {
    // A reused pid counts as running: reclaiming nothing is the safe mistake.
    readFileSync(`/proc/${pid}/stat`);
    return true;
  } catch {
    return false;
  }
}

function readRecord(file: string): BridgeRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as Partial<BridgeRecord>;
    return Number.isSafeInteger(r.pid) && typeof r.tag === "string" ? { pid: r.pid!, tag: r.tag } : undefined;
  } catch {
    return undefined;
  }
}

/** The IPv4 addresses on `name`, or undefined when there is no such interface. */
function addressesOf(name: string): string[] | undefined {
  try {
    const [link] = JSON.parse(execFileSync("ip", ["-j", "-4", "addr", "show", "dev", name], { encoding: "utf8", stdio: "pipe" })) as {
      addr_info?: { local: string }[];
    }[];
    return (link?.addr_info ?? []).map((a) => a.local);
  } catch {
    return undefined;
  }
}

/**
 * Removes the recorded test bridges whose owner is gone (kept only if in 198.18.0.0/15, the
 * tests' range), with their machines' namespaces and every process still in them, and forgets
 * their records. Returns the names of the bridges removed.
 */
export async function reclaimDeadRunBridges(): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(REGISTRY);
  } catch {
    return [];
  }
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter(Boolean);
  const removed: string[] = [];
  for (const name of names) {
    const file = join(REGISTRY, name);
    const record = readRecord(file);
    if (record && running(record.pid)) continue;
    const addresses = addressesOf(name);
    if (record && addresses?.some((a) => /^198\.1[89]\./.test(a))) {
      const machines = namespaces.filter((n) => n.startsWith("flt-") && n.endsWith(`-${record.tag}`)).map((n) => n.slice("flt-".length));
      for (const m of machines) await killMachineProcesses(`/run/netns/flt-${m}`, undefined, "SIGKILL", 0);
      removeLeftovers(machines, name);
      if (addressesOf(name) !== undefined) throw new Error(`could not remove ${name}, the bridge of a test run that is gone`);
      removed.push(name);
    }
    rmSync(file, { force: true });
  }
  return removed;
}

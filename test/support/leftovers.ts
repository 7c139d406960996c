// What a killed test run leaves in the kernel: the bridges its netns machines made (each holding
// a fixed /24 that the next run's machines need) and those machines' namespaces. A bridge is named
// `<prefix><tag>`, the tag being its vitest worker's pid in base 36, and its machines' namespaces
// end in `-<tag>`. Only what belongs to a pid that no longer runs is reclaimed, so a run going on
// beside this one (another worktree) keeps its own.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { killMachineProcesses } from "../../libs/drivers/src/netns-host";

/** Every test bridge prefix, longest first so that a name splits into prefix and tag one way only. */
export const TEST_BRIDGE_PREFIXES = [
  "flmir",
  "flcp",
  "flse",
  "flcn",
  "flvo",
  "flhc",
  "flit",
  "flov",
  "flqe",
  "fle2",
  "flrb",
  "flsv",
  "flmt",
  "flqt",
  "flqp",
  "flcc",
  "flpv",
  "flph",
  "flal",
  "flma",
  "flf",
] as const;

export type TestBridgePrefix = (typeof TEST_BRIDGE_PREFIXES)[number];

/** The bridge a test file's machines use: the prefix names the file, the tag this process. */
export function testBridge(prefix: TestBridgePrefix, tag = process.pid.toString(36)): string {
  return `${prefix}${tag}`.slice(0, 15);
}

/**
 * A test bridge's tag (which its machines' names end with) and owning pid; undefined for a name
 * that is not a test bridge's.
 */
export function bridgeOwner(name: string): { tag: string; pids: number[] } | undefined {
  const prefix = TEST_BRIDGE_PREFIXES.find((p) => name.startsWith(p));
  if (!prefix) return undefined;
  const tag = name.slice(prefix.length);
  if (!/^[0-9a-z]{1,6}$/.test(tag)) return undefined;
  // The faults lab's ingress and bench runs put a letter before the pid (`i<pid>`, `b<pid>`); a
  // plain pid may begin with that letter too, so both readings are owners.
  const readings = /^[ib]./.test(tag) ? [tag, tag.slice(1)] : [tag];
  return { tag, pids: readings.map((r) => parseInt(r, 36)) };
}

function running(pid: number): boolean {
  try {
    // A reused pid counts as running: reclaiming nothing is the safe mistake.
    readFileSync(`/proc/${pid}/stat`);
    return true;
  } catch {
    return false;
  }
}

function inTestRange(addr: string): boolean {
  return /^198\.1[89]\./.test(addr);
}

/**
 * Removes the bridges in 198.18.0.0/15 whose owning test process is gone, with their machines'
 * namespaces and every process still in them. Returns the names of the bridges removed.
 */
export async function reclaimDeadRunBridges(): Promise<string[]> {
  const links = JSON.parse(execFileSync("ip", ["-j", "-4", "addr", "show", "type", "bridge"], { encoding: "utf8" })) as {
    // Interfaces without an IPv4 address come out as {}.
    ifname?: string;
    addr_info?: { local: string }[];
  }[];
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter(Boolean);
  const removed: string[] = [];
  for (const link of links) {
    if (!link.ifname) continue;
    const owner = bridgeOwner(link.ifname);
    if (!owner || owner.pids.some(running) || !link.addr_info?.some((a) => inTestRange(a.local))) continue;
    const { tag } = owner;
    for (const ns of namespaces.filter((n) => n.startsWith("flt-") && n.endsWith(`-${tag}`))) {
      await killMachineProcesses(`/run/netns/${ns}`, undefined, "SIGKILL", 0);
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    }
    execFileSync("ip", ["link", "del", link.ifname], { stdio: "ignore" });
    removed.push(link.ifname);
  }
  return removed;
}

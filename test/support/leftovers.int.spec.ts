// The sweep that global setup runs before each test run, done for real: a recorded bridge and a
// machine namespace (with a process in it) owned by a pid that has exited are removed; a recorded
// bridge owned by a process that runs (this one) is left alone, and so is a bridge nobody
// recorded, whatever its name (a user's machines' bridge).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { freeSubnet24 } from "./free-subnet";
import { reclaimDeadRunBridges, testBridge } from "./leftovers";

const root = process.getuid?.() === 0;

function exitedPid(): number {
  // spawnSync returns once the child has exited; its pid is free (and not reused this soon).
  return spawnSync("true").pid!;
}

function links(): string {
  return execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
}

function namespaces(): string {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}

describe.skipIf(!root)("reclaiming what dead test runs left", () => {
  const made: string[][] = [];
  afterAll(() => {
    for (const args of made.reverse()) spawnSync("ip", args, { stdio: "ignore" });
  });

  it("removes a dead run's bridge, its machines' namespaces and their processes, and keeps a live run's", async () => {
    const deadPid = exitedPid();
    const deadTag = deadPid.toString(36);
    const dead = testBridge("flmt", deadTag, deadPid);
    const live = testBridge("flmt");
    // Named like a test bridge of a dead run, but never recorded: as a user's `flmach0` would be.
    const unrecorded = `flma${deadTag}`.slice(0, 15);
    const octets = Array.from({ length: 40 }, (_, i) => 200 + i);
    const deadNet = freeSubnet24(octets);
    const liveNet = freeSubnet24(octets.filter((o) => `198.19.${o}` !== deadNet.prefix));
    const userNet = freeSubnet24(octets.filter((o) => `198.19.${o}` !== deadNet.prefix && `198.19.${o}` !== liveNet.prefix));
    const ns = `flt-m1-${deadTag}`;
    for (const [name, net] of [
      [dead, deadNet],
      [live, liveNet],
      [unrecorded, userNet],
    ] as const) {
      execFileSync("ip", ["link", "add", name, "type", "bridge"]);
      made.push(["link", "del", name]);
      execFileSync("ip", ["addr", "add", `${net.gateway}/24`, "dev", name]);
    }
    execFileSync("ip", ["netns", "add", ns]);
    made.push(["netns", "del", ns]);
    const inside = spawn("ip", ["netns", "exec", ns, "sleep", "600"], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => inside.on("exit", (_code, sig) => resolve(sig)));
    // The sleep has joined the namespace once `ip netns pids` lists it.
    for (let i = 0; i < 100 && !execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).trim(); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }

    const removed = await reclaimDeadRunBridges();

    expect(removed).toContain(dead);
    expect(removed).not.toContain(live);
    expect(removed).not.toContain(unrecorded);
    expect(links()).toContain(`${unrecorded}:`);
    expect(links()).not.toContain(`${dead}:`);
    expect(links()).toContain(`${live}:`);
    expect(namespaces()).not.toContain(ns);
    expect(await exited).toBe("SIGKILL");
  });
});

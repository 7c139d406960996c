import { describe, expect, it } from "vitest";
import { readlinkSync } from "node:fs";
import { machineProcesses } from "../src/netns-host";

describe("machineProcesses safety", () => {
  it("never counts the host's own mount namespace as a machine's (a stale record must not kill the host)", async () => {
    const hostMnt = readlinkSync("/proc/self/ns/mnt");
    expect(await machineProcesses("/run/netns/flt-no-such-machine", hostMnt)).toEqual([]);
  });

  it("never counts the host's own network namespace as a machine's", async () => {
    // /proc/self/ns/net is the host's netns inode: as if a machine's netns path pointed there.
    expect(await machineProcesses("/proc/self/ns/net", undefined)).toEqual([]);
  });
});

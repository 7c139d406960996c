// Command failures of the host network name the step, the command and the tool's own words
// (agent/src/network/exec.ts).
import { describe, expect, it } from "vitest";
import { isMissing, NetworkCommandError, run } from "../src/network/exec";

describe("run", () => {
  it("resolves with stdout and feeds stdin", async () => {
    expect(await run("echo", "cat", [], { input: "hello" })).toBe("hello");
  });

  it("names step, command, exit status and stderr", async () => {
    const err = await run("veth", "sh", ["-c", "echo 'RTNETLINK answers: File exists' >&2; exit 2"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkCommandError);
    expect((err as Error).message).toBe(
      "veth: sh -c echo 'RTNETLINK answers: File exists' >&2; exit 2: exit 2: RTNETLINK answers: File exists",
    );
    expect(err).toMatchObject({ step: "veth", exitCode: 2, stderr: "RTNETLINK answers: File exists" });
  });

  it("reports a missing tool by its spawn error", async () => {
    await expect(run("iptables", "flotilla-no-such-tool", ["-V"])).rejects.toThrow(/^iptables: flotilla-no-such-tool -V: exit ENOENT: /);
  });

  it("tells 'not there' failures apart", () => {
    expect(isMissing(new NetworkCommandError("veth", "ip link del dev x", 1, 'Cannot find device "x"'))).toBe(true);
    expect(isMissing(new NetworkCommandError("veth", "ip link add x", 2, "RTNETLINK answers: File exists"))).toBe(false);
    expect(isMissing(new Error("does not exist"))).toBe(false);
  });
});

// The native shim (agent/shim) against the real kernel: its life cycle. Logs and their escaping,
// state.json, detaching from the caller, signal forwarding and `kill`, one shim per state dir.
// Needs root and busybox-static (see support/shim-suite.ts).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import {
  boxArgs,
  leftovers,
  logText,
  pidAlive,
  readLog,
  readState,
  sessionOf,
  shim,
  SHIM_BIN,
  waitForExit,
  waitForState,
  waitUntil,
} from "./support/shim";
import { isRoot, RFC3339_NANO, useShimSuite } from "./support/shim-suite";

describe.skipIf(!isRoot)("flotilla-shim lifecycle", () => {
  const suite = useShimSuite();
  const { box, runToExit } = suite;

  it("writes stdout and stderr to the log as json-file lines, records the exit code, leaves nothing behind", () => {
    const b = box("log");
    const r = runToExit(b, [], ["sh", "-c", 'echo hello; echo oops >&2; printf "no newline"; exit 3']);
    expect(r.stderr).toContain("oops"); // --foreground also passes output through
    expect(r.stdout).toBe("hello\nno newline");
    expect(r.status).toBe(3);

    const records = readLog(b.log);
    expect(records.map(({ log, stream }) => ({ log, stream }))).toEqual([
      { log: "hello\n", stream: "stdout" },
      { log: "oops\n", stream: "stderr" },
      { log: "no newline", stream: "stdout" }, // the partial last line is flushed at exit
    ]);
    for (const rec of records) {
      expect(rec.time).toMatch(RFC3339_NANO);
      expect(Math.abs(Date.parse(rec.time) - Date.now())).toBeLessThan(60_000);
    }
    const s = r.state!;
    expect(s).toMatchObject({ id: b.id, status: "exited", exitCode: 3, oomKilled: false, error: null, cgroup: `flotilla/${b.id}` });
    expect(s.pid).toBeGreaterThan(0);
    expect(s.shimPid).toBeGreaterThan(0);
    expect(Date.parse(s.startedAt!)).toBeLessThanOrEqual(Date.parse(s.finishedAt!));
    expect(leftovers(b)).toEqual([]);
  });

  it("escapes quotes, backslashes, control characters and invalid UTF-8 in log lines", () => {
    const b = box("escape");
    runToExit(b, [], ["sh", "-c", String.raw`printf 'tab\there "q" \\ \001 caf\303\251 \377\n'`]);
    const raw = fs.readFileSync(b.log, "utf8");
    expect(raw).toContain(String.raw`"log":"tab\there \"q\" \\ \u0001 café ` + "\uFFFD" + String.raw`\n"`);
    expect(readLog(b.log)[0]!.log).toBe('tab\there "q" \\ \u0001 café \uFFFD\n');
  });

  it("detached: returns once the command runs (state running), then records the exit", async () => {
    const b = box("detach");
    const r = shim(["run", ...boxArgs(b, suite.lower), "--", "sh", "-c", "read line; echo got:$line:; sleep 2; echo done"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const printed = JSON.parse(r.stdout);
    expect(printed).toMatchObject({ id: b.id, status: "running", exitCode: null });
    expect(readState(b.stateDir)).toMatchObject({ status: "running", pid: printed.pid, shimPid: printed.shimPid });
    expect(pidAlive(printed.pid)).toBe(true);

    const s = await waitForExit(b.stateDir);
    expect(s.exitCode).toBe(0);
    expect(JSON.parse(shim(["state", "--state-dir", b.stateDir]).stdout)).toEqual(s);
    expect(logText(b.log)).toBe("got::\ndone\n"); // stdin is /dev/null
    // The shim records the exit, then cleans up and exits itself: it is gone soon after.
    await waitUntil("the shim to exit", () => !pidAlive(printed.shimPid));
    expect(leftovers(b)).toEqual([]);
  });

  it("survives its caller being killed; signals reach the container through the shim pid and `kill`", async () => {
    const b = box("survive");
    const script = 'trap "echo got-usr1" USR1; trap "echo got-term; exit 143" TERM; echo ready; while :; do sleep 1 & wait $!; done';
    // the "agent": a shell in its own session that starts the shim, then blocks
    const args = ["run", ...boxArgs(b, suite.lower), "--", "sh", "-c", script].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    const agent = spawn("bash", ["-c", `'${SHIM_BIN}' ${args}; sleep 300`], { detached: true, stdio: "ignore" });
    const running = await waitForState(b.stateDir, (s) => s.status === "running" && logText(b.log).includes("ready"));
    const agentSession = sessionOf(agent.pid!);
    process.kill(-agent.pid!, "SIGKILL"); // the agent's whole process group
    await new Promise((r) => setTimeout(r, 200));
    expect(pidAlive(agent.pid!)).toBe(false);
    expect(pidAlive(running.shimPid)).toBe(true);
    expect(pidAlive(running.pid)).toBe(true);
    expect(sessionOf(running.shimPid)).not.toBe(agentSession);
    expect(readState(b.stateDir).status).toBe("running");

    process.kill(running.shimPid, "SIGUSR1"); // forwarded by the shim
    await waitForState(b.stateDir, () => logText(b.log).includes("got-usr1"));
    expect(shim(["kill", "--state-dir", b.stateDir]).status).toBe(0); // TERM by default
    const s = await waitForExit(b.stateDir);
    expect(s).toMatchObject({ exitCode: 143, oomKilled: false });
    expect(logText(b.log)).toBe("ready\ngot-usr1\ngot-term\n");
    await waitUntil("the shim to exit", () => !pidAlive(running.shimPid));
    expect(leftovers(b)).toEqual([]);

    const k = shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    expect(k.status).toBe(1);
    expect(k.stderr).toContain("container is not running");
  });

  it("SIGKILL through `kill --state-dir` ends a command that ignores TERM (137)", async () => {
    const b = box("sigkill");
    const r = shim(["run", ...boxArgs(b, suite.lower), "--", "sleep", "300"]);
    expect(r.status).toBe(0);
    const { pid } = JSON.parse(r.stdout);
    shim(["kill", "--state-dir", b.stateDir, "TERM"]); // pid 1 without a handler: ignored
    await new Promise((res) => setTimeout(res, 200));
    expect(pidAlive(pid)).toBe(true);
    expect(shim(["kill", "--state-dir", b.stateDir, "SIGKILL"]).status).toBe(0);
    expect(await waitForExit(b.stateDir)).toMatchObject({ exitCode: 137, oomKilled: false });
    expect(pidAlive(pid)).toBe(false);
    expect(leftovers(b)).toEqual([]);
  });

  it("refuses a second run on the state dir of a live container, without touching it", async () => {
    const b = box("twice");
    const first = shim(["run", ...boxArgs(b, suite.lower), "--", "sleep", "300"]);
    expect(first.status).toBe(0);
    const before = readState(b.stateDir);
    const second = shim(["run", ...boxArgs(b, suite.lower), "--", "true"]);
    expect(second.status).toBe(125);
    expect(second.stderr).toContain(`state: ${b.stateDir} is in use by another shim`);
    expect(readState(b.stateDir)).toEqual(before);
    expect(shim(["kill", "--state-dir", b.stateDir, "KILL"]).status).toBe(0); // the FIFO still works
    expect(await waitForExit(b.stateDir)).toMatchObject({ pid: before.pid, exitCode: 137 });
    expect(leftovers(b)).toEqual([]);
  });
});

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { UnavailableError } from "@flotilla/core";
import { commandFailed, createExecRunner } from "@flotilla/drivers";

const node = process.execPath;

describe("createExecRunner", () => {
  const runner = createExecRunner();

  it("resolves with output and exit code for any exit, and feeds stdin", async () => {
    const r = await runner.run(
      node,
      ["-e", "process.stdin.pipe(process.stdout); process.stderr.write('e'); process.on('exit', () => process.exitCode = 3)"],
      {
        input: "in",
      },
    );
    expect([r.stdout, r.stderr, r.exitCode]).toEqual(["in", "e", 3]);
  });

  it("a missing tool is UnavailableError 'not found on PATH'", async () => {
    const err = await runner.run("flotilla-no-such-tool", ["x"]).catch((e: unknown) => e as UnavailableError);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as UnavailableError).message).toBe("flotilla-no-such-tool: not found on PATH");
    expect((err as UnavailableError).details.reason).toBe("not-found");
  });

  it("kills a command that overruns its limit, naming the step", async () => {
    await expect(runner.run(node, ["-e", "setTimeout(() => {}, 10000)"], { timeoutMs: 200 })).rejects.toThrow(
      `${node} -e: timed out after 200ms`,
    );
  });

  it("abort kills the command and rejects only once it has exited", async () => {
    const pidFile = join(mkdtempSync(join(tmpdir(), "flotilla-runner-")), "pid");
    const ac = new AbortController();
    const p = runner.run(
      node,
      ["-e", `require("fs").writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setTimeout(() => {}, 10000)`],
      {
        signal: ac.signal,
      },
    );
    while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    const pid = Number(readFileSync(pidFile, "utf8"));
    rmSync(dirname(pidFile), { recursive: true, force: true });
    // Gone, not a zombie: the runner waited for it to be reaped.
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
  });

  it("commandFailed keeps the tool's own error line", () => {
    const err = commandFailed("VBoxManage createvm", {
      command: "VBoxManage",
      args: ["createvm"],
      stdout: "",
      stderr:
        "0%...\nVBoxManage: error: Machine settings file '/x/x.vbox' already exists\nVBoxManage: error: Details: code VBOX_E_FILE_ERROR",
      exitCode: 1,
    });
    expect(err.message).toBe("VBoxManage createvm: exit 1: VBoxManage: error: Machine settings file '/x/x.vbox' already exists");
  });
});

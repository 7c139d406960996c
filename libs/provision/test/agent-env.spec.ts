// Finding 8 of issue 11: agent.env is sourced by a root shell (`set -a; . agent.env`) and its
// values went in unquoted, so a value with `$(...)` or `;` ran as root on the machine.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentLayout, renderAgentEnv, renderRunScript } from "../src";

describe("agent.env", () => {
  it("is sourced by the run script without running anything in a value", () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-s11-env-"));
    try {
      const pwned = join(dir, "pwned");
      const hostile = {
        FLOTILLA_API_URL: `http://198.18.0.1:8080/$(touch ${pwned})`,
        FLOTILLA_JOIN_TOKEN: `x; touch ${pwned}; echo`,
        FLOTILLA_MACHINE_NAME: `it's \`touch ${pwned}\``,
      };
      const file = join(dir, "agent.env");
      writeFileSync(file, renderAgentEnv(hostile));
      // The same sourcing line as renderRunScript writes.
      expect(renderRunScript(agentLayout(false), {})).toContain(
        "set -a; [ -f '/etc/flotilla/agent.env' ] && . '/etc/flotilla/agent.env'; set +a",
      );
      const out = execFileSync(
        "sh",
        ["-c", `set -a; . '${file}'; set +a; printf '%s\\n' "$FLOTILLA_API_URL" "$FLOTILLA_JOIN_TOKEN" "$FLOTILLA_MACHINE_NAME"`],
        { encoding: "utf8" },
      );
      expect(existsSync(pwned)).toBe(false);
      expect(out).toBe(`${hostile.FLOTILLA_API_URL}\n${hostile.FLOTILLA_JOIN_TOKEN}\n${hostile.FLOTILLA_MACHINE_NAME}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a value that would end the line", () => {
    expect(() => renderAgentEnv({ FLOTILLA_JOIN_TOKEN: "a\ntouch /tmp/x" })).toThrow(
      "agent.env: FLOTILLA_JOIN_TOKEN holds a newline or NUL",
    );
  });
});

describe("deny-bind on machines that share the host", () => {
  it("is passed to the agent of a netns machine only", () => {
    const engine = { denyBinds: ["/root/.config/flotilla", "/var/lib/flotilla"] };
    expect(renderRunScript(agentLayout(true), engine)).toContain("--deny-bind '/root/.config/flotilla' --deny-bind '/var/lib/flotilla'");
    expect(renderRunScript(agentLayout(false), engine)).not.toContain("--deny-bind");
  });
});

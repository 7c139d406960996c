// The service files provisioning writes for hosts without systemd: valid shell, the LSB header
// update-rc.d reads, and the stop that leaves containers (the shim's children) running.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { agentLayout, renderInitScript, stopSupervisorScript } from "../src";

describe("the System V init script", () => {
  const script = renderInitScript(agentLayout(false));

  it("is valid sh with the LSB header for runlevels 2-5", () => {
    execFileSync("sh", ["-n"], { input: script });
    expect(script).toContain("# Provides:          flotilla-agent\n");
    expect(script).toContain("# Default-Start:     2 3 4 5\n");
    expect(script).toContain("# Default-Stop:      0 1 6\n");
  });

  it("starts the supervisor loop detached, once, and stops it by its pid files", () => {
    expect(script).toContain(
      "running || { mkdir -p '/run/flotilla' && setsid '/opt/flotilla/agent-supervise.sh' </dev/null >/dev/null 2>&1 & }",
    );
    expect(script).toContain(`stop) ${stopSupervisorScript(agentLayout(false))} ;;`);
    // Only the supervisor and the agent are signalled, never a process group: containers live on.
    expect(stopSupervisorScript(agentLayout(false))).not.toMatch(/kill -\w+ -|killall|pkill/);
  });
});

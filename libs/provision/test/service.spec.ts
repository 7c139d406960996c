// The service files provisioning writes for hosts without systemd: valid shell, the LSB header
// update-rc.d reads, and the stop that leaves containers (the shim's children) running.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  agentLayout,
  enableServiceScript,
  hostProbeScript,
  parseHostProbe,
  renderInitScript,
  serviceFiles,
  serviceKindOf,
  stopSupervisorScript,
} from "../src";

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

describe("what provisioning asks a host, in one exec", () => {
  it("reads os-release, the netns marker, the init system and the runtime's recorded sha256", () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-probe-"));
    try {
      const sha = "a".repeat(64);
      writeFileSync(join(dir, "SHA256"), `${sha}\n`);
      writeFileSync(join(dir, "marker"), "");
      const out = execFileSync("sh", ["-c", hostProbeScript(join(dir, "marker"), dir)], { encoding: "utf8" });
      const probe = parseHostProbe(out);
      expect(probe.osRelease).toContain("ID=");
      expect(probe.netns).toBe(true);
      expect(probe.runtimeSha256).toBe(sha);
      const none = parseHostProbe(execFileSync("sh", ["-c", hostProbeScript(join(dir, "nope"), join(dir, "nope"))], { encoding: "utf8" }));
      expect(none.netns).toBe(false);
      expect(none.runtimeSha256).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseHostProbe("ID=x\n#flotilla-probe\ninitd\nruntime not-a-sha\n")).toEqual({
      osRelease: "ID=x\n",
      netns: false,
      systemd: false,
      initd: true,
    });
    expect(() => parseHostProbe("ID=x\n")).toThrow(/incomplete/);
  });

  it("picks the service kind: netns → supervisor, then systemd, then init.d", () => {
    expect(serviceKindOf(agentLayout(true), { systemd: true, initd: true })).toBe("supervisor");
    expect(serviceKindOf(agentLayout(false), { systemd: true, initd: true })).toBe("systemd");
    expect(serviceKindOf(agentLayout(false), { systemd: false, initd: true })).toBe("init.d");
    expect(serviceKindOf(agentLayout(false), { systemd: false, initd: false })).toBe("supervisor");
    expect(serviceFiles(agentLayout(false), "init.d").map((f) => f.path)).toEqual([
      "/opt/flotilla/agent-supervise.sh",
      "/etc/init.d/flotilla-agent",
    ]);
    for (const k of ["systemd", "init.d", "supervisor"] as const) execFileSync("sh", ["-n"], { input: enableServiceScript(k) });
  });
});

// --engine-label and --engine-env in the agent's environment file: labels become
// FLOTILLA_NODE_LABELS (what the agent reports for its node), env is passed as given, and sourcing
// the file sets exactly those values.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { engineEnvironment, renderAgentEnv } from "../src";

describe("engine options in the agent's environment", () => {
  it("turns labels into FLOTILLA_NODE_LABELS and passes env through; sourcing sets exactly those values", () => {
    const env = engineEnvironment({
      labels: { zone: "east", disk: "ssd" },
      env: { HTTP_PROXY: "http://198.18.0.1:3128", ODD: "a'b $(id) `id`" },
    });
    expect(env).toEqual({ FLOTILLA_NODE_LABELS: "zone=east,disk=ssd", HTTP_PROXY: "http://198.18.0.1:3128", ODD: "a'b $(id) `id`" });
    const dir = mkdtempSync(join(tmpdir(), "flotilla-engine-env-"));
    try {
      writeFileSync(join(dir, "agent.env"), renderAgentEnv(env));
      const out = execFileSync(
        "sh",
        ["-c", 'set -a; . "$1"; set +a; printf "%s\\n" "$FLOTILLA_NODE_LABELS" "$HTTP_PROXY" "$ODD"', "sh", join(dir, "agent.env")],
        { encoding: "utf8" },
      );
      expect(out).toBe("zone=east,disk=ssd\nhttp://198.18.0.1:3128\na'b $(id) `id`\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("adds nothing without labels or env", () => {
    expect(engineEnvironment({ insecureRegistries: ["r:5000"] })).toEqual({});
  });
});

// Services with a named volume, end to end on a real netns machine: the task writes into the
// volume, an update replaces it with a new task (a new container) on the same node, and the new
// task reads back what the old one wrote — the volume was created on first use and kept when its
// container went. A tmpfs mount and a read-only view of the same volume come along. Traffic
// stays on loopback and on a bridge in 198.19.115.0/24 that this test creates.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until as untilShared } from "../support/until";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flvo");
const GATEWAY = "198.19.115.1";
const M = `vol-${tag}`;
// Each generation appends its name to the volume's history and to a file on its tmpfs, then
// waits; `docker exec cat` reads both back.
const WRITER = ["sh", "-c", 'echo "$GEN" >> /data/history && echo "$GEN" > /scratch/mine && exec sleep 3600'];

interface TaskView {
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
  desiredState: string;
}

describe.skipIf(!root)("a service's named volume outlives its tasks on a netns machine", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-volumes-"));
  const regPort = 32000 + (process.pid % 5000);
  let lab: NetnsLab;
  let image: string;
  const db = `db-${tag}`;

  const ctl = (args: string[]) => lab.ctl(args);
  const json = <T>(path: string) => lab.json<T>(path);
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 90_000) => untilShared(what, probe, ms);
  const docker = async (args: string[]) => {
    const r = await run("docker", args, await lab.dockerEnv(M));
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  /** The one running task, once there is exactly one and it is RUNNING. */
  const runningTask = () =>
    until(`${db} to run one task`, async () => {
      const live = (await json<TaskView[]>(`/api/v1/tasks?service=${db}&desired-state=running`)).filter((t) => t.state === "RUNNING");
      return live.length === 1 && live[0];
    });

  beforeAll(async () => {
    lab = await startNetnsLab({ base, gateway: GATEWAY, bridge: BRIDGE, apiPort: regPort + 1, regPort });
    image = lab.image;
    const r = await lab.createMachine(M, BRIDGE);
    expect(r.code, r.stderr).toBe(0);
    await until("the machine to join as a ready node", async () =>
      (await json<{ hostname: string; status: string }[]>("/api/v1/nodes")).some((n) => n.hostname === M && n.status === "ready"),
    );
  }, 400_000);

  afterAll(async () => {
    await lab?.stop([M]);
    removeLeftovers([M], BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("writes into the volume, is updated onto a new task on the same node, and reads its data back", { timeout: 300_000 }, async () => {
    const created = await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      db,
      "--env",
      "GEN=first",
      "--mount",
      "type=volume,source=dbdata,target=/data",
      "--mount",
      "source=dbdata,target=/view,readonly",
      "--mount",
      "type=tmpfs,target=/scratch,tmpfs-size=1m",
      image,
      ...WRITER,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const first = await runningTask();
    expect(first.nodeHostname).toBe(M);
    await until(
      "the first task to write",
      async () => (await docker(["exec", first.containerId!, "cat", "/data/history"])).trim() === "first",
    );
    // The volume exists on the node under its own name, created by the first task.
    expect((await docker(["volume", "ls", "-q"])).split("\n")).toContain("dbdata");

    const updated = await ctl(["service", "update", "--timeout", "120s", "--env-add", "GEN=second", db]);
    expect(updated.code, updated.stderr).toBe(0);
    const second = await until("a new task", async () => {
      const t = await runningTask();
      return t.containerId !== first.containerId && t;
    });
    expect(second.nodeHostname).toBe(M);
    const history = await until("the second task to write", async () => {
      const text = (await docker(["exec", second.containerId!, "cat", "/data/history"])).trim();
      return text.split("\n").length === 2 && text;
    });
    expect(history.split("\n")).toEqual(["first", "second"]);
    // The read-only view shows the same data and refuses writes; the tmpfs is the new task's own.
    expect((await docker(["exec", second.containerId!, "cat", "/view/history"])).trim()).toBe("first\nsecond");
    const write = await run("docker", ["exec", second.containerId!, "sh", "-c", "echo x > /view/nope"], await lab.dockerEnv(M));
    expect(write.code).not.toBe(0);
    expect((await docker(["exec", second.containerId!, "cat", "/scratch/mine"])).trim()).toBe("second");
    // The first task's container goes (the new task waited for its stop; the removal follows);
    // its volume stays.
    await until(
      "the first task's container to be removed",
      async () => !(await docker(["ps", "-aq", "--no-trunc"])).split("\n").includes(first.containerId!),
    );
    expect((await docker(["volume", "ls", "-q"])).split("\n")).toContain("dbdata");
  });

  it("rejects a task whose bind source does not exist on the node, with that reason in ctl service ps", { timeout: 200_000 }, async () => {
    const bad = `bind-${tag}`;
    const created = await ctl([
      "service",
      "create",
      "-d",
      "--name",
      bad,
      "--mount",
      "type=bind,source=/nonexistent-flotilla-e2e,target=/x",
      image,
      "sleep",
      "60",
    ]);
    expect(created.code, created.stderr).toBe(0);
    await until("a REJECTED task", async () =>
      (await json<(TaskView & { error: string | null })[]>(`/api/v1/tasks?service=${bad}`)).some(
        (t) => t.state === "REJECTED" && /bind source path does not exist: \/nonexistent-flotilla-e2e/.test(t.error ?? ""),
      ),
    );
    const ps = await ctl(["service", "ps", bad]);
    expect(ps.stdout).toMatch(/REJECTED .*bind source path does not exist: \/nonexistent-flotilla-e2e/);
    expect((await ctl(["service", "rm", bad])).code).toBe(0);
  });
});

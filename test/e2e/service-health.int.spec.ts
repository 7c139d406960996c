// Health-gated rolling updates, end to end on a real netns machine: images built there with a
// HEALTHCHECK that passes (health-good) or fails (health-bad), and one without a shell. A task
// with a health check is STARTING until healthy; a rolling update to the failing image pauses
// (failure action pause) or rolls back (failure action rollback), with the unhealthy task's
// reason in `ctl service ps`; a shell health command on an image without /bin/sh is refused with
// that reason; the ingress mesh sends a task traffic only once it is healthy. Traffic stays on
// loopback and on a bridge in 198.19.120.0/24 that this test creates.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
import { until as pollUntil } from "../support/until";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flhc");
const GATEWAY = "198.19.120.1";
const M = `hc-${tag}`;
// Each task serves its container's host name (the container id's first 12 characters).
const WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];

interface TaskView {
  id: string;
  slot: number | null;
  specVersion: number;
  containerId: string | null;
  state: string;
  desiredState: string;
  error: string | null;
}
interface ServiceView {
  taskVersion: number;
  spec: { image: string };
  updateState: { status: string; message: string } | null;
}

describe.skipIf(!root)("health-gated rolling updates on a netns machine", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-health-"));
  const regPort = 37000 + (process.pid % 4000);
  let lab: NetnsLab;
  let dockerEnv: Record<string, string | undefined>;
  let busybox: string;

  const ctl = (args: string[]) => lab.ctl(args);
  const json = <T>(path: string) => lab.json<T>(path);
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 120_000) => pollUntil(what, probe, ms);

  const docker = async (args: string[]) => {
    const r = await run("docker", args, dockerEnv, 180_000);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const build = async (name: string, dockerfile: string) => {
    const dir = join(base, name.replace(/[^a-z]/g, ""));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "Dockerfile"), dockerfile);
    await docker(["build", "-q", "-t", name, dir]);
  };
  const tasks = (service: string) => json<TaskView[]>(`/api/v1/tasks?service=${service}`);
  const service = (name: string) => json<ServiceView>(`/api/v1/services/${name}`);

  beforeAll(async () => {
    lab = await startNetnsLab({ base, gateway: GATEWAY, bridge: BRIDGE, apiPort: regPort + 1, regPort });
    busybox = lab.image;
    const r = await lab.createMachine(M, BRIDGE);
    expect(r.code, r.stderr).toBe(0);
    await until("the machine to join as a ready node", async () =>
      (await json<{ hostname: string; status: string }[]>("/api/v1/nodes")).some((n) => n.hostname === M && n.status === "ready"),
    );
    dockerEnv = { ...(await lab.dockerEnv(M)), DOCKER_BUILDKIT: "0" };
    // Built on the machine itself, so its tasks find them there without a pull.
    await build("health-good:1", `FROM ${busybox}\nHEALTHCHECK --interval=1s --timeout=5s --retries=2 CMD ["true"]\n`);
    await build("health-bad:1", `FROM ${busybox}\nHEALTHCHECK --interval=1s --timeout=5s --retries=1 CMD ["false"]\n`);
    await build("no-shell:1", `FROM ${busybox} AS b\nFROM scratch\nCOPY --from=b /bin/busybox /busybox\n`);
  }, 400_000);

  afterAll(async () => {
    await lab?.stop([M]);
    removeLeftovers([M], BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("pauses an update to an image whose health check fails, with the reason in ctl service ps", { timeout: 300_000 }, async () => {
    const web = `web-${tag}`;
    const created = await ctl(["service", "create", "--timeout", "120s", "--name", web, "--replicas", "2", busybox, "sleep", "3600"]);
    expect(created.code, created.stderr).toBe(0);
    const updated = await ctl(["service", "update", "-d", "--update-monitor", "60s", "--image", "health-bad:1", web]);
    expect(updated.code, updated.stderr).toBe(0);
    const paused = await until("the update to pause", async () => {
      const s = await service(web);
      return s.updateState?.status === "paused" && s;
    });
    expect(paused.updateState!.message).toMatch(/^update paused: 1 of 2 tasks failed/);
    const all = await tasks(web);
    // The first batch's task failed its health check; the other slot still runs the old version.
    expect(all.find((t) => t.specVersion === 2 && t.state === "FAILED")?.error).toMatch(/^task: unhealthy container/);
    expect(all.filter((t) => t.specVersion === 1 && t.desiredState === "running" && t.state === "RUNNING")).toHaveLength(1);
    const ps = await ctl(["service", "ps", web]);
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/FAILED .*task: unhealthy container/);
    expect(ps.stderr).toMatch(/update paused: 1 of 2 tasks failed/);
    expect((await ctl(["service", "rm", web])).code).toBe(0);
  });

  it("rolls an update to an unhealthy image back, and waits for health before calling tasks running", { timeout: 300_000 }, async () => {
    const api2 = `api-${tag}`;
    const created = await ctl([
      "service",
      "create",
      "-d",
      "--name",
      api2,
      "--replicas",
      "2",
      "--update-failure-action",
      "rollback",
      "--update-monitor",
      "60s",
      "health-good:1",
      "sleep",
      "3600",
    ]);
    expect(created.code, created.stderr).toBe(0);
    // The image's health check gates RUNNING: a task is seen STARTING first, then RUNNING healthy.
    await until("a task starting before its health check passed", async () => (await tasks(api2)).some((t) => t.state === "STARTING"));
    const running = await until("both tasks healthy", async () => {
      const l = (await tasks(api2)).filter((t) => t.state === "RUNNING");
      return l.length === 2 && l;
    });
    const health = JSON.parse(await docker(["inspect", "--format", "{{json .State.Health.Status}}", running[0].containerId!])) as string;
    expect(health).toBe("healthy");

    const updated = await ctl(["service", "update", "-d", "--image", "health-bad:1", api2]);
    expect(updated.code, updated.stderr).toBe(0);
    const rolled = await until("the rollback to complete", async () => {
      const s = await service(api2);
      return s.updateState?.status === "rollback-completed" && s;
    });
    expect(rolled.spec.image).toBe("health-good:1");
    expect(rolled.taskVersion).toBe(3);
    // Back on the old spec: the untouched slot at version 1 (the same spec), the failed one
    // restarted by its restart policy (after its delay) at version 3, healthy again.
    const live = await until("both slots running the old spec", async () => {
      const l = (await tasks(api2)).filter((t) => t.desiredState === "running" && t.state === "RUNNING");
      return l.length === 2 && l;
    });
    expect(live.some((t) => t.specVersion === 2)).toBe(false);
    const ps = await ctl(["service", "ps", api2]);
    expect(ps.stdout).toMatch(/FAILED .*task: unhealthy container/);
    expect(ps.stderr).toMatch(/rollback completed/);
    expect((await ctl(["service", "rm", api2])).code).toBe(0);
  });

  it("sends ingress traffic only to healthy tasks", { timeout: 200_000 }, async () => {
    const mesh = `mesh-${tag}`;
    const ip = (await ctl(["machine", "ip", M])).stdout.trim();
    // Healthy once /tmp/ready exists; the long start period keeps a task "starting" (not failed) until then.
    const created = await ctl([
      "service",
      "create",
      "-d",
      "--name",
      mesh,
      "--replicas",
      "2",
      "--publish",
      "8081:80",
      "--health-cmd",
      "test -f /tmp/ready",
      "--health-interval",
      "1s",
      "--health-start-period",
      "10m",
      busybox,
      ...WHOAMI,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const starting = await until("two tasks STARTING with containers", async () => {
      const l = (await tasks(mesh)).filter((t) => t.state === "STARTING" && t.containerId);
      return l.length === 2 && l;
    });
    const get = async () => {
      const res = await fetch(`http://${ip}:8081/`, { signal: AbortSignal.timeout(5_000) });
      return { status: res.status, body: (await res.text()).trim() };
    };
    const [first, second] = starting;
    await docker(["exec", first.containerId!, "touch", "/tmp/ready"]);
    await until("the first task RUNNING", async () => (await tasks(mesh)).find((t) => t.id === first.id)?.state === "RUNNING");
    // Every answer comes from the healthy task, never from the one still starting.
    const seen = await until("the mesh to answer from the healthy task", async () => {
      const bodies = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const r = await get();
        if (r.status !== 200) return false;
        bodies.add(r.body);
      }
      return bodies;
    });
    expect([...seen]).toEqual([first.containerId!.slice(0, 12)]);
    await docker(["exec", second.containerId!, "touch", "/tmp/ready"]);
    const both = await until("the mesh to answer from both tasks", async () => {
      const bodies = new Set<string>();
      for (let i = 0; i < 8; i++) bodies.add((await get()).body);
      return bodies.size === 2 && bodies;
    });
    expect([...both].sort()).toEqual([first.containerId!.slice(0, 12), second.containerId!.slice(0, 12)].sort());
    expect((await ctl(["service", "rm", mesh])).code).toBe(0);
  });

  it("refuses a shell health command on an image without a shell, naming the reason", { timeout: 200_000 }, async () => {
    const bad = `nosh-${tag}`;
    const created = await ctl(["service", "create", "-d", "--name", bad, "--health-cmd", "true", "no-shell:1", "/busybox", "sleep", "60"]);
    expect(created.code, created.stderr).toBe(0);
    await until("a REJECTED task", async () =>
      (await tasks(bad)).some((t) => t.state === "REJECTED" && /needs \/bin\/sh, which image no-shell:1 does not have/.test(t.error ?? "")),
    );
    const ps = await ctl(["service", "ps", bad]);
    expect(ps.stdout).toMatch(/REJECTED .*Healthcheck: a shell health command \(--health-cmd, CMD-SHELL\) needs \/bin\/sh/);
    expect((await ctl(["service", "rm", bad])).code).toBe(0);
  });
});

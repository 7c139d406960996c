// Secrets, configs and private registry credentials, end to end on a real netns machine. The
// secret is readable in the task at /run/secrets/NAME with the asked owner and mode, on a tmpfs,
// read-only; the config at its target. The secret's value is then looked for everywhere it must
// not be: `docker inspect`, every API answer about the service, its tasks and the secret, the
// event stream, the API's log (at debug level), and every file of the machine's disk (the agent's
// log, container records and logs). A secret in use cannot be removed; its files go with the
// container. An image of a registry with htpasswd auth runs only with --with-registry-auth (the
// credentials docker login stored, sent for that service's pulls); without it the task is
// rejected with the registry's refusal, shown by `ctl service ps`. And `ctl service logs` still
// shows what finished tasks wrote once their containers are gone (replaced by an update, or
// exited). Traffic stays on loopback and
// on a bridge in 198.19.110.0/24 that this test creates.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConsoleLogger, type LogLevel } from "@nestjs/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApi } from "../../apps/api/test/support";
import { startRegistry, type TestRegistry } from "../support/registry";
import { startNetnsLab, type NetnsLab } from "./lab";
import { forward, removeLeftovers, run } from "./support";
import { until as pollUntil } from "../support/until";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flse");
const GATEWAY = "198.19.110.1";
const M = `sec-${tag}`;

/** Every line the API logs, at every level. */
class RecordingLogger extends ConsoleLogger {
  readonly lines: string[] = [];
  constructor() {
    super({ json: true, colors: false, logLevels: ["fatal", "error", "warn", "log", "debug", "verbose"] });
  }
  protected override printMessages(messages: unknown[], context?: string, logLevel?: LogLevel): void {
    this.lines.push(JSON.stringify({ logLevel, context, messages }));
  }
}

/** Every regular file under `dir`, read whole (small test trees). */
function filesUnder(dir: string): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...filesUnder(path));
    else if (st.isFile() && st.size < 64 << 20) out.push({ path, text: readFileSync(path).toString("latin1") });
  }
  return out;
}

interface TaskView {
  nodeHostname: string | null;
  containerId: string | null;
  state: string;
}

describe.skipIf(!root)("a service's secret and config on a netns machine", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-secrets-"));
  // Outside `base`: the files ctl reads the values from are not the machine's.
  const valuesDir = mkdtempSync(join(tmpdir(), "flotilla-e2e-secret-values-"));
  const regPort = 37000 + (process.pid % 5000);
  const apiPort = regPort + 1;
  const logger = new RecordingLogger();
  // Random, so finding it anywhere cannot be a coincidence.
  const VALUE = `s3cret-${randomBytes(16).toString("hex")}`;
  const CONFIG = `listen ${randomBytes(4).toString("hex")};\n`;
  const leaks = [VALUE, Buffer.from(VALUE).toString("base64")];
  let lab: NetnsLab;
  let privateForward: Server | undefined;
  let privateRegistry: TestRegistry;
  let privateImage: string;
  const PRIVATE_PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
  let api: TestApi;
  let env: Record<string, string | undefined>;
  let image: string;
  const svc = `web-${tag}`;

  const ctl = (args: string[]) => lab.ctl(args);
  const json = <T>(path: string) => lab.json<T>(path);
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 90_000) => pollUntil(what, probe, ms);

  const docker = async (args: string[]) => {
    const r = await run("docker", args, await lab.dockerEnv(M));
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const expectNoLeak = (where: string, text: string) => {
    for (const leak of leaks) expect(text.includes(leak), `the secret's value in ${where}`).toBe(false);
  };
  /** The event stream from the start, read until `marker` shows up in it. */
  const eventStream = async (marker: string): Promise<string> => {
    const ac = new AbortController();
    const res = await api.fetch("/api/v1/events?since=0", { signal: ac.signal, headers: { accept: "text/event-stream" } });
    let text = "";
    const timer = setTimeout(() => ac.abort(), 30_000);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += Buffer.from(chunk).toString("utf8");
        if (text.includes(marker)) break;
      }
    } catch {
      // aborted: the assertion below says what was missing
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    expect(text, "the event stream reached the marker").toContain(marker);
    return text;
  };

  beforeAll(async () => {
    lab = await startNetnsLab({
      base,
      gateway: GATEWAY,
      bridge: BRIDGE,
      apiPort,
      regPort,
      apiEnv: { FLOTILLA_LOG_LEVEL: "debug" },
      apiLogger: logger,
    });
    api = lab.api;
    env = lab.env;
    image = lab.image;
    privateRegistry = await startRegistry({ htpasswd: { username: "alice", password: PRIVATE_PASSWORD } });
    await privateRegistry.pushBusybox("private/busybox:latest");
    privateImage = `${GATEWAY}:${regPort + 2}/private/busybox:latest`;
    privateForward = await forward(GATEWAY, regPort + 2, Number(privateRegistry.host.split(":")[1]));
    const r = await lab.createMachine(M, BRIDGE, ["--engine-insecure-registry", `${GATEWAY}:${regPort + 2}`]);
    expect(r.code, r.stderr).toBe(0);
    await until("the machine to join as a ready node", async () =>
      (await json<{ hostname: string; status: string }[]>("/api/v1/nodes")).some((n) => n.hostname === M && n.status === "ready"),
    );
  }, 400_000);

  afterAll(async () => {
    privateForward?.close();
    await lab?.stop([M]);
    await privateRegistry?.stop();
    removeLeftovers([M], BRIDGE);
    rmSync(base, { recursive: true, force: true });
    rmSync(valuesDir, { recursive: true, force: true });
  });

  it("gives the task its secret and config as files, and the secret's value shows nowhere else", { timeout: 300_000 }, async () => {
    writeFileSync(join(valuesDir, "db_pass"), VALUE);
    writeFileSync(join(valuesDir, "app.conf"), CONFIG);
    expect((await ctl(["secret", "create", "db_pass", join(valuesDir, "db_pass")])).code).toBe(0);
    expect((await ctl(["config", "create", "app.conf", join(valuesDir, "app.conf")])).code).toBe(0);
    rmSync(join(valuesDir, "db_pass"));

    const created = await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      svc,
      "--secret",
      "source=db_pass,uid=1000,gid=1001,mode=0400",
      "--config",
      "source=app.conf,target=/etc/app.conf",
      image,
      "sleep",
      "3600",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const task = await until(`${svc} to run`, async () => {
      const live = (await json<TaskView[]>(`/api/v1/tasks?service=${svc}`)).filter((t) => t.state === "RUNNING");
      return live.length === 1 && live[0];
    });
    expect(task.nodeHostname).toBe(M);
    const id = task.containerId!;

    // In the task: the value, its owner and mode, on a tmpfs, read-only.
    expect(await docker(["exec", id, "cat", "/run/secrets/db_pass"])).toBe(VALUE);
    expect((await docker(["exec", id, "stat", "-c", "%a %u %g", "/run/secrets/db_pass"])).trim()).toBe("400 1000 1001");
    expect(await docker(["exec", id, "cat", "/etc/app.conf"])).toBe(CONFIG);
    expect((await docker(["exec", id, "stat", "-c", "%a %u %g", "/etc/app.conf"])).trim()).toBe("444 0 0");
    const mount = (await docker(["exec", id, "cat", "/proc/mounts"])).split("\n").find((l) => l.split(" ")[1] === "/run/secrets/db_pass");
    expect(mount, "a mount at /run/secrets/db_pass").toBeDefined();
    expect(mount!.split(" ")[2]).toBe("tmpfs");
    expect(mount!.split(" ")[3].split(",")).toContain("ro");
    const env2 = await lab.dockerEnv(M);
    expect((await run("docker", ["exec", id, "sh", "-c", "echo x > /run/secrets/db_pass"], env2)).code).not.toBe(0);

    // Nowhere else: docker inspect, the API, the event stream, the logs, the machine's disk.
    expectNoLeak("docker inspect", await docker(["inspect", id]));
    for (const path of [
      `/api/v1/services/${svc}`,
      "/api/v1/services",
      `/api/v1/tasks?service=${svc}`,
      "/api/v1/secrets",
      "/api/v1/secrets/db_pass",
    ]) {
      expectNoLeak(path, await (await api.fetch(path)).text());
    }
    expectNoLeak("ctl service inspect", (await ctl(["service", "inspect", svc])).stdout);
    expectNoLeak("ctl secret inspect", (await ctl(["secret", "inspect", "db_pass"])).stdout);
    // The config, unlike the secret, is readable.
    expect((await ctl(["config", "inspect", "--raw", "app.conf"])).stdout).toBe(CONFIG);

    const rm = await ctl(["secret", "rm", "db_pass"]);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain(`secret db_pass is in use by service ${svc}`);

    const marker = `marker-${tag}`;
    writeFileSync(join(valuesDir, marker), "m");
    expect((await ctl(["config", "create", marker, join(valuesDir, marker)])).code).toBe(0);
    expectNoLeak("the event stream", await eventStream(marker));
    expect(logger.lines.length, "the API logged at debug level").toBeGreaterThan(0);
    expectNoLeak("the API log", logger.lines.join("\n"));
    const disk = filesUnder(join(base, "data"));
    expect(disk.some((f) => f.path.endsWith("agent.log"))).toBe(true);
    for (const f of disk) expectNoLeak(f.path, f.text);

    // Removed with the container: the service goes, its task's files on the machine too.
    expect((await ctl(["service", "rm", svc])).code).toBe(0);
    await until("the task's container to be removed", async () => !(await docker(["ps", "-aq", "--no-trunc"])).split("\n").includes(id));
    const left = await ctl(["machine", "ssh", M, "ls", "-A", "/var/lib/flotilla-agent/task-files"]);
    expect(left.code, left.stderr).toBe(0);
    expect(left.stdout.trim()).toBe("");
    expect((await ctl(["secret", "rm", "db_pass"])).code).toBe(0);
  });

  it("runs a private registry's image only with --with-registry-auth", { timeout: 300_000 }, async () => {
    // What `docker login` leaves in $DOCKER_CONFIG/config.json (the lab's, which ctl reads).
    const login = env.DOCKER_CONFIG!;
    mkdirSync(login, { recursive: true });
    const registryHost = `${GATEWAY}:${regPort + 2}`;
    writeFileSync(
      join(login, "config.json"),
      JSON.stringify({ auths: { [registryHost]: { auth: Buffer.from(`alice:${PRIVATE_PASSWORD}`).toString("base64") } } }),
    );

    // Without: every task is rejected with the registry's refusal.
    const anon = `anon-${tag}`;
    expect((await ctl(["service", "create", "-d", "--name", anon, privateImage, "sleep", "3600"])).code).toBe(0);
    await until("a REJECTED task", async () =>
      (await json<(TaskView & { error: string | null })[]>(`/api/v1/tasks?service=${anon}`)).some(
        (t) => t.state === "REJECTED" && /pull access denied .*authentication required/.test(t.error ?? ""),
      ),
    );
    expect((await ctl(["service", "ps", anon])).stdout).toMatch(/REJECTED .*pull access denied/);
    expect((await ctl(["service", "rm", anon])).code).toBe(0);

    // With: the credentials go with this service's pulls and the task runs.
    const priv = `priv-${tag}`;
    const created = await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--with-registry-auth",
      "--name",
      priv,
      privateImage,
      "sleep",
      "3600",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const view = await json<{ registryAuth: { serverAddress: string } | null }>(`/api/v1/services/${priv}`);
    expect(view.registryAuth).toEqual({ serverAddress: registryHost });
    for (const path of [`/api/v1/services/${priv}`, "/api/v1/services", `/api/v1/tasks?service=${priv}`]) {
      expect((await (await api.fetch(path)).text()).includes(PRIVATE_PASSWORD), path).toBe(false);
    }
    expect(logger.lines.join("\n").includes(PRIVATE_PASSWORD), "the password in the API log").toBe(false);
    for (const f of filesUnder(join(base, "data"))) expect(f.text.includes(PRIVATE_PASSWORD), f.path).toBe(false);
    expect((await ctl(["service", "rm", priv])).code).toBe(0);
  });

  it("shows the logs of finished tasks, whose containers are gone", { timeout: 300_000 }, async () => {
    // Replaced by an update: the old task is stopped and its container removed (dispatch's stop).
    const upd = `logs-${tag}`;
    const created = await ctl([
      "service",
      "create",
      "--timeout",
      "120s",
      "--name",
      upd,
      "--env",
      "GEN=one",
      image,
      "sh",
      "-c",
      'echo "words-$GEN"; exec sleep 3600',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const first = await until(`${upd} to run`, async () => {
      const live = (await json<TaskView[]>(`/api/v1/tasks?service=${upd}`)).filter((t) => t.state === "RUNNING");
      return live.length === 1 && live[0];
    });
    expect((await ctl(["service", "update", "--timeout", "120s", "--env-add", "GEN=two", upd])).code).toBe(0);
    await until(
      "the first task's container to be removed",
      async () => !(await docker(["ps", "-aq", "--no-trunc"])).split("\n").includes(first.containerId!),
    );
    const logs = await until("both tasks' lines", async () => {
      const out = (await ctl(["service", "logs", upd])).stdout;
      return /words-one/.test(out) && /words-two/.test(out) && out;
    });
    expect(logs).toMatch(new RegExp(`^${upd}\\.1@${M} \\| words-one$`, "m"));
    expect((await ctl(["service", "logs", "--tail", "1", upd])).stdout.split("\n").filter(Boolean)).toHaveLength(2);
    expect((await ctl(["service", "rm", upd])).code).toBe(0);

    // Exited on its own: the container is removed as a stray of its finished task.
    const bye = `bye-${tag}`;
    const made = await ctl([
      "service",
      "create",
      "-d",
      "--name",
      bye,
      "--restart-condition",
      "none",
      image,
      "sh",
      "-c",
      "echo last-words >&2; exit 3",
    ]);
    expect(made.code, made.stderr).toBe(0);
    const failed = await until("the task to fail", async () => {
      const t = (await json<TaskView[]>(`/api/v1/tasks?service=${bye}`)).find((x) => x.state === "FAILED");
      return t?.containerId ? t : undefined;
    });
    await until(
      "its container to be removed",
      async () => !(await docker(["ps", "-aq", "--no-trunc"])).split("\n").includes(failed.containerId!),
    );
    expect((await ctl(["service", "logs", bye])).stdout).toMatch(new RegExp(`^${bye}\\.1@${M} \\| last-words$`, "m"));
    expect((await ctl(["service", "rm", bye])).code).toBe(0);
  });
});

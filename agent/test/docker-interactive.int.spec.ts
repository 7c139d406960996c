// Interactive containers driven by the real docker CLI (28.x) in a real terminal (tmux): docker
// run -it (echo, tty, stty size, resize, exit code), -i with a pipe, docker exec (-it, -i, -d,
// -e/-u/-w), detach keys and re-attach, the tty log, and a container that keeps its terminal
// across an agent restart. Real shim, real kernel, a real registry on loopback; no network
// module (the containers get loopback only).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import {
  docker,
  dockerOk,
  HAS_DOCKER_CLI,
  IS_ROOT,
  knownIds,
  leftovers,
  rawRequest,
  startTestAgent,
  stopTestAgent,
  waitFor,
  type CliResult,
  type TestAgent,
} from "./docker-helpers";
import { HAS_TMUX, Terminal } from "./support/terminal";

let registry: TestRegistry;
let agent: TestAgent;
let image: string;
let env: NodeJS.ProcessEnv;
const terminals: Terminal[] = [];

/** The docker CLI with `input` on its stdin (a pipe, not a terminal). */
function dockerInput(args: readonly string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn("docker", args, { env: { PATH: process.env.PATH, HOME: env.DOCKER_CONFIG, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

function term(command: string, cols?: number, rows?: number): Terminal {
  const t = Terminal.start(
    command,
    { DOCKER_HOST: env.DOCKER_HOST, DOCKER_CONFIG: env.DOCKER_CONFIG, HOME: env.DOCKER_CONFIG },
    cols,
    rows,
  );
  terminals.push(t);
  return t;
}

/** The busybox shell prompt (root): "<cwd> # " at the end of the screen. */
const PROMPT = /# $/m;

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI || !HAS_TMUX)("interactive containers with the docker CLI in a terminal", () => {
  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({ dir: fs.mkdtempSync("/tmp/flotilla-dit-"), insecureRegistries: [registry.host], network: null });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    for (const t of terminals) t.kill();
    Terminal.killServer();
    await stopTestAgent(agent);
    await registry?.stop();
  });

  it("docker run -it: echoes what is typed, has a tty of the terminal's size, follows a resize, exits with the shell's code", async () => {
    const t = term(`docker run -it --name it1 ${image} sh`, 120, 40);
    await t.waitFor(PROMPT);
    t.line("echo typed-$((6*7)); tty; stty size; echo $TERM");
    const m = await t.waitFor(/typed-42\n(\/dev\/pts\/\d+)\n(\d+ \d+)\n(\S+)\n/);
    expect(t.screen()).toContain("echo typed-$((6*7))"); // the tty echoed the input
    expect(m[1]).toMatch(/^\/dev\/pts\/\d+$/);
    expect(m[2]).toBe("40 120");
    expect(m[3]).toBe("xterm");
    t.resize(100, 30);
    await waitFor("the resize to reach the container", async () => {
      t.line("stty size");
      await new Promise((r) => setTimeout(r, 200));
      return /^30 100$/m.test(t.screen());
    });
    t.line("ls -l /dev/console | cut -c1; exit 3");
    expect(await t.exitCode()).toBe(3);
    const c = JSON.parse(await dockerOk(env, ["inspect", "it1"]))[0];
    expect(c.Config).toMatchObject({ Tty: true, OpenStdin: true, StdinOnce: true, AttachStdin: true });
    expect(c.State).toMatchObject({ Status: "exited", ExitCode: 3 });
    // The log of a tty container is one raw stream, terminal line endings included.
    const logs = await docker(env, ["logs", "it1"]);
    expect(logs.stdout).toContain("typed-42\r\n");
    expect(logs.stderr).toBe("");
    await dockerOk(env, ["rm", "it1"]);
  });

  it("docker run -i with a pipe: stdin reaches the command, its EOF ends it, exit code and streams kept", async () => {
    const cat = await dockerInput(["run", "--rm", "-i", image, "cat"], "hello\nworld\n");
    expect(cat).toMatchObject({ code: 0, stdout: "hello\nworld\n", stderr: "" });
    const sh = await dockerInput(["run", "--rm", "-i", image, "sh", "-c", "read a; echo got $a; echo oops >&2; exit 2"], "line-one\n");
    expect(sh).toMatchObject({ code: 2, stdout: "got line-one\n", stderr: "oops\n" });
    // Bigger than any pipe buffer, so back-pressure is exercised both ways.
    const big = "x".repeat(1 << 20);
    const wc = await dockerInput(["run", "--rm", "-i", image, "wc", "-c"], big);
    expect(wc.stdout.trim()).toBe(String(1 << 20));
    expect(await dockerOk(env, ["ps", "-aq"])).toBe("");
  });

  it("docker exec: -it in a terminal, plain, -i, -d, -e/-u/-w, and the container's environment", async () => {
    await dockerOk(env, ["run", "-d", "--name", "ex1", "-e", "FROM_RUN=yes", image, "sleep", "3600"]);
    const t = term("docker exec -it ex1 sh", 90, 25);
    await t.waitFor(PROMPT);
    t.line("tty; stty size; echo $FROM_RUN; cat /proc/1/cmdline | tr '\\0' ' '; echo");
    const m = await t.waitFor(/(\/dev\/pts\/\d+)\n(\d+ \d+)\nyes\nsleep 3600 \n/);
    expect(m[2]).toBe("25 90");
    t.resize(70, 20);
    await waitFor("the exec's resize", async () => {
      t.line("stty size");
      await new Promise((r) => setTimeout(r, 200));
      return /^20 70$/m.test(t.screen());
    });
    t.line("exit 3");
    expect(await t.exitCode()).toBe(3);

    expect(await docker(env, ["exec", "ex1", "sh", "-c", "echo out; echo err >&2; exit 4"])).toMatchObject({
      code: 4,
      stdout: "out\n",
      stderr: "err\n",
    });
    expect(
      await dockerOk(env, ["exec", "-e", "X=1", "-u", "nobody", "-w", "/tmp", "ex1", "sh", "-c", "echo $X $FROM_RUN; id -u; pwd"]),
    ).toBe("1 yes\n65534\n/tmp");
    expect(await dockerInput(["exec", "-i", "ex1", "sh", "-c", "cat; echo done"], "piped\n")).toMatchObject({
      code: 0,
      stdout: "piped\ndone\n",
    });
    await dockerOk(env, ["exec", "-d", "ex1", "sh", "-c", "echo bg > /tmp/bg"]);
    await waitFor("the detached exec's file", async () => (await docker(env, ["exec", "ex1", "cat", "/tmp/bg"])).stdout === "bg\n");
    // Same namespaces and cgroup as the container, same capabilities and seccomp filter.
    const ns = await dockerOk(env, [
      "exec",
      "ex1",
      "sh",
      "-c",
      "hostname; grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/cgroup | grep -c ':/$'",
    ]);
    const hostname = JSON.parse(await dockerOk(env, ["inspect", "ex1"]))[0].Config.Hostname;
    expect(ns.split("\n")).toEqual([
      hostname,
      "CapEff:\t00000000a80425fb",
      "CapBnd:\t00000000a80425fb",
      "NoNewPrivs:\t1",
      "Seccomp:\t2",
      expect.stringMatching(/^\d+$/),
    ]);
    const missing = await docker(env, ["exec", "ex1", "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("executable file not found");
  });

  it("exec refuses a stopped or missing container and --privileged, and leaves no exec running", async () => {
    await dockerOk(env, ["run", "-d", "--name", "ex2", image, "sleep", "3600"]);
    const priv = await docker(env, ["exec", "--privileged", "ex2", "true"]);
    expect(priv.code).not.toBe(0);
    expect(priv.stderr).toContain("privileged exec");
    // An exec still running when its container stops ends with it.
    const create = await rawRequest(agent.socket, "POST", "/v1.41/containers/ex2/exec", JSON.stringify({ Cmd: ["sleep", "1000"] }));
    expect(create.status).toBe(201);
    const execId = JSON.parse(create.body).Id;
    expect((await rawRequest(agent.socket, "POST", `/v1.41/exec/${execId}/start`, JSON.stringify({ Detach: true }))).status).toBe(200);
    expect(JSON.parse((await rawRequest(agent.socket, "GET", `/v1.41/exec/${execId}/json`)).body)).toMatchObject({
      Running: true,
      ExitCode: null,
    });
    await dockerOk(env, ["kill", "ex2"]);
    // The kernel kills the exec with the container's pid namespace; its shim records that.
    const ended = await waitFor("the exec to end with its container", async () => {
      const x = JSON.parse((await rawRequest(agent.socket, "GET", `/v1.41/exec/${execId}/json`)).body);
      return x.Running ? null : x;
    });
    expect(ended).toMatchObject({ Running: false, ExitCode: 137 });
    const stopped = await docker(env, ["exec", "ex2", "true"]);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toMatch(/Container [0-9a-f]{64} is not running/);
    const gone = await docker(env, ["exec", "nope", "true"]);
    expect(gone.stderr).toContain("No such container: nope");
    expect((await rawRequest(agent.socket, "GET", "/v1.41/exec/nope/json")).body).toContain("No such exec instance: nope");
    const resize = await rawRequest(agent.socket, "POST", "/v1.41/containers/ex2/resize?h=10&w=10");
    expect(resize.status).toBe(409);
    expect((await rawRequest(agent.socket, "POST", "/v1.41/containers/ex2/resize?h=x&w=10")).status).toBe(400);
    await dockerOk(env, ["rm", "ex2"]);
    expect((await rawRequest(agent.socket, "GET", `/v1.41/exec/${execId}/json`)).status).toBe(404);
  });

  it("detaches with ctrl-p ctrl-q, re-attaches with docker attach (stdin included), survives an agent restart", async () => {
    const t = term(`docker run -it --name dt ${image} sh`);
    await t.waitFor(PROMPT);
    t.line("echo first-$((1+1))");
    await t.waitFor(/first-2/);
    t.keys("C-p", "C-q");
    expect(await t.exitCode()).toBe(0);
    expect(await dockerOk(env, ["inspect", "-f", "{{.State.Status}}", "dt"])).toBe("running");

    // The shim, not the agent, holds the terminal: a new agent on the same root finds it.
    const dir = agent.dir;
    await agent.handle.close();
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], network: null });
    env = agent.env;

    const a = term("docker attach dt");
    // No prompt is printed on attach; what is typed is echoed by the tty.
    await new Promise((r) => setTimeout(r, 300));
    a.line("echo second-$((2+1))");
    await a.waitFor(/second-3/);
    a.line("exit 5");
    expect(await a.exitCode()).toBe(5);
    expect(await dockerOk(env, ["inspect", "-f", "{{.State.ExitCode}}", "dt"])).toBe("5");
    await dockerOk(env, ["rm", "dt"]);
  });

  it("docker top, stats (one-shot and stream), pause/unpause", async () => {
    await dockerOk(env, ["run", "-d", "--name", "ops", "--memory", "64m", image, "sh", "-c", "sleep 3600 & exec sleep 3601"]);
    // the background sleep is forked by the shell before its exec: wait until both run
    const top = await waitFor("both sleeps in docker top", async () => {
      const t = await dockerOk(env, ["top", "ops"]);
      return t.includes("sleep 3600") && t.includes("sleep 3601") ? t : null;
    });
    expect(top.split("\n")[0]).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    expect(top).toContain("sleep 3600");
    expect(top).toContain("sleep 3601");
    expect(top).not.toContain("vitest"); // only the container's processes
    const custom = JSON.parse((await rawRequest(agent.socket, "GET", "/v1.41/containers/ops/top?ps_args=-o%20pid,comm")).body);
    expect(custom.Titles).toEqual(["PID", "COMMAND"]);
    expect(custom.Processes.map((p: string[]) => p[1]).sort()).toEqual(["sleep", "sleep"]);

    const stats = JSON.parse(await dockerOk(env, ["stats", "--no-stream", "--format", "{{json .}}", "ops"]));
    expect(stats.Name).toBe("ops");
    expect(stats.MemUsage).toMatch(/ \/ 64MiB$/);
    expect(stats.PIDs).toBe("2");
    const raw = JSON.parse((await rawRequest(agent.socket, "GET", "/v1.41/containers/ops/stats?stream=0&one-shot=1")).body);
    expect(raw.memory_stats.limit).toBe(64 * 1024 * 1024);
    expect(raw.memory_stats.usage).toBeGreaterThan(0);
    expect(raw.cpu_stats.cpu_usage.total_usage).toBeGreaterThan(0);
    expect(raw.cpu_stats.system_cpu_usage).toBeGreaterThan(0);
    expect(raw.pids_stats.current).toBe(2);
    expect(Array.isArray(raw.blkio_stats.io_service_bytes_recursive)).toBe(true);

    await dockerOk(env, ["pause", "ops"]);
    expect(await dockerOk(env, ["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ops"])).toBe("paused true");
    expect(await dockerOk(env, ["ps", "--filter", "name=ops", "--format", "{{.Status}}"])).toMatch(/\(Paused\)$/);
    const state = JSON.parse((await rawRequest(agent.socket, "GET", "/v1.41/containers/ops/stats?stream=0&one-shot=1")).body);
    expect(state.pids_stats.current).toBe(2);
    expect((await docker(env, ["pause", "ops"])).stderr).toContain("is already paused");
    expect((await docker(env, ["exec", "ops", "true"])).stderr).toContain("is paused, unpause the container before exec");
    await dockerOk(env, ["unpause", "ops"]);
    expect(await dockerOk(env, ["exec", "ops", "echo", "thawed"])).toBe("thawed");
    expect((await docker(env, ["unpause", "ops"])).stderr).toContain("is not paused");
    // A paused container can still be removed by force (thawed for the KILL).
    await dockerOk(env, ["pause", "ops"]);
    await dockerOk(env, ["rm", "-f", "ops"]);
    const gone = await rawRequest(agent.socket, "GET", "/v1.41/containers/ops/stats?stream=0");
    expect(gone.status).toBe(404);
    expect(gone.body).toContain("No such container: ops");
  });

  it("health checks: from --health-cmd to healthy, a failing one to unhealthy, events and docker ps", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "good",
      "--health-cmd",
      "test -e /tmp/ready && echo fine",
      "--health-interval",
      "200ms",
      "--health-retries",
      "2",
      "--health-start-period",
      "30s",
      image,
      "sh",
      "-c",
      "sleep 1; touch /tmp/ready; exec sleep 3600",
    ]);
    await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "bad",
      "--health-cmd",
      "echo broken; exit 1",
      "--health-interval",
      "200ms",
      "--health-retries",
      "2",
      image,
      "sleep",
      "3600",
    ]);
    await dockerOk(env, ["run", "-d", "--name", "none", "--no-healthcheck", image, "sleep", "3600"]);
    const health = async (name: string) => JSON.parse(await dockerOk(env, ["inspect", "-f", "{{json .State.Health}}", name]));
    expect((await health("good")).Status).toMatch(/starting|healthy/);
    await waitFor("good to become healthy", async () => (await health("good")).Status === "healthy", 20_000);
    await waitFor("bad to become unhealthy", async () => (await health("bad")).Status === "unhealthy", 20_000);
    const good = await health("good");
    expect(good.FailingStreak).toBe(0);
    expect(good.Log.at(-1)).toMatchObject({ ExitCode: 0, Output: "fine\n" });
    const bad = await health("bad");
    expect(bad.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(bad.Log.at(-1)).toMatchObject({ ExitCode: 1, Output: "broken\n" });
    expect(await dockerOk(env, ["ps", "--filter", "name=good", "--format", "{{.Status}}"])).toMatch(/\(healthy\)$/);
    expect(await dockerOk(env, ["ps", "--filter", "name=bad", "--format", "{{.Status}}"])).toMatch(/\(unhealthy\)$/);
    const events = await dockerOk(env, [
      "events",
      "--since",
      String(since),
      "--until",
      String(Math.ceil(Date.now() / 1000)),
      "--filter",
      "event=health_status",
      "--format",
      "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    expect(events.split("\n")).toEqual(expect.arrayContaining(["good health_status: healthy", "bad health_status: unhealthy"]));
    expect(await dockerOk(env, ["inspect", "-f", "{{json .State.Health}} {{json .Config.Healthcheck.Test}}", "none"])).toBe(
      'null ["NONE"]',
    );
    const bogus = await docker(env, ["run", "-d", "--health-cmd", "true", "--health-interval", "1us", image, "true"]);
    expect(bogus.stderr).toContain("Interval in Healthcheck cannot be less than 1ms");
    for (const n of ["good", "bad"]) await dockerOk(env, ["rm", "-f", n]);
    await dockerOk(env, ["rm", "-f", "none"]);
  });

  it("rename, update (limits on the running cgroup, restart policy), diff", async () => {
    await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "upd",
      "--memory",
      "64m",
      image,
      "sh",
      "-c",
      "echo x > /tmp/new; rm /bin/vi; echo y >> /etc/passwd; exec sleep 3600",
    ]);
    await dockerOk(env, ["rename", "upd", "upd2"]);
    expect(await dockerOk(env, ["inspect", "-f", "{{.Name}}", "upd2"])).toBe("/upd2");
    expect((await docker(env, ["inspect", "upd"])).code).not.toBe(0);
    await dockerOk(env, ["run", "-d", "--name", "other", image, "sleep", "3600"]);
    expect((await docker(env, ["rename", "upd2", "other"])).stderr).toContain('The container name "/other" is already in use');
    await dockerOk(env, ["update", "--memory", "96m", "--pids-limit", "50", "--cpus", "0.5", "--restart", "on-failure:3", "upd2"]);
    const limits = await dockerOk(env, ["exec", "upd2", "sh", "-c", "echo ok"]);
    expect(limits).toBe("ok");
    const hc = JSON.parse(await dockerOk(env, ["inspect", "-f", "{{json .HostConfig}}", "upd2"]));
    expect(hc).toMatchObject({
      Memory: 96 * 1024 * 1024,
      PidsLimit: 50,
      NanoCpus: 5e8,
      RestartPolicy: { Name: "on-failure", MaximumRetryCount: 3 },
    });
    const raw = JSON.parse((await rawRequest(agent.socket, "GET", "/v1.41/containers/upd2/stats?stream=0&one-shot=1")).body);
    expect(raw.memory_stats.limit).toBe(96 * 1024 * 1024);
    expect(raw.pids_stats.limit).toBe(50);
    expect((await docker(env, ["update", "--blkio-weight", "300", "upd2"])).stderr).toContain("BlkioWeight is not supported");
    await waitFor("the container's changes", async () => (await dockerOk(env, ["diff", "upd2"])).includes("D /bin/vi"));
    const diff = (await dockerOk(env, ["diff", "upd2"])).split("\n");
    expect(diff).toEqual(expect.arrayContaining(["A /tmp/new", "D /bin/vi", "C /etc/passwd"]));
    await dockerOk(env, ["rm", "-f", "upd2", "other"]);
  });

  it("docker cp both ways, and symlinks in the container never lead out of its rootfs", async () => {
    const host = fs.mkdtempSync("/tmp/flotilla-cp-");
    const target = fs.mkdtempSync("/var/tmp/flotilla-cp-target-"); // exists on the host only
    fs.writeFileSync(`${host}/secret`, "HOST SECRET\n");
    fs.writeFileSync(`${host}/in.txt`, "into the container\n");
    fs.mkdirSync(`${host}/tree/sub`, { recursive: true });
    fs.writeFileSync(`${host}/tree/sub/file.txt`, "nested\n");
    const script = `mkdir -p /data; ln -s ${host} /tmp/abs; ln -s ../../../../../..${host} /tmp/rel; ln -s ${target} /data/sub; ln -s ${target} /tmp/evil; exec sleep 3600`;
    await dockerOk(env, ["run", "-d", "--name", "cp1", image, "sh", "-c", script]);
    await waitFor("the links", async () => (await docker(env, ["exec", "cp1", "test", "-L", "/tmp/evil"])).code === 0);
    try {
      // in and out
      await dockerOk(env, ["cp", `${host}/in.txt`, "cp1:/tmp/"]);
      expect(await dockerOk(env, ["exec", "cp1", "cat", "/tmp/in.txt"])).toBe("into the container");
      expect(await dockerOk(env, ["exec", "cp1", "stat", "-c", "%u:%g", "/tmp/in.txt"])).toBe("0:0");
      await dockerOk(env, ["cp", "cp1:/etc/passwd", `${host}/passwd.out`]);
      expect(fs.readFileSync(`${host}/passwd.out`, "utf8")).toBe((await dockerOk(env, ["exec", "cp1", "cat", "/etc/passwd"])) + "\n");
      await dockerOk(env, ["cp", `${host}/tree`, "cp1:/tmp/"]);
      expect(await dockerOk(env, ["exec", "cp1", "sh", "-c", "ls -lR /tmp/tree; cat /tmp/tree/sub/file.txt"])).toMatch(/nested$/);
      await dockerOk(env, ["cp", "cp1:/tmp/tree", `${host}/tree.out`]);
      expect(fs.readFileSync(`${host}/tree.out/sub/file.txt`, "utf8")).toBe("nested\n");
      // out through links: they resolve inside the container, where the host path does not exist
      for (const link of ["/tmp/abs/secret", "/tmp/rel/secret"]) {
        const r = await docker(env, ["cp", `cp1:${link}`, `${host}/stolen`]);
        expect(r.code, link).not.toBe(0);
        expect(r.stderr).toContain("Could not find the file");
        expect(fs.existsSync(`${host}/stolen`)).toBe(false);
      }
      // in through links: a destination behind a link, and an archive directory over a link
      expect((await docker(env, ["cp", `${host}/in.txt`, "cp1:/tmp/evil/"])).code).not.toBe(0);
      await dockerOk(env, ["cp", `${host}/tree/.`, "cp1:/data"]);
      expect(await dockerOk(env, ["exec", "cp1", "cat", "/data/sub/file.txt"])).toBe("nested");
      expect(fs.readdirSync(target)).toEqual([]);
      expect((await docker(env, ["cp", "cp1:/no/such", `${host}/x`])).stderr).toContain("Could not find the file /no/such in container");
    } finally {
      await dockerOk(env, ["rm", "-f", "cp1"]);
      fs.rmSync(host, { recursive: true, force: true });
      fs.rmSync(target, { recursive: true, force: true });
    }
  });

  it("leaves no mounts or cgroups behind", async () => {
    for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true });
    expect(leftovers(agent.root, knownIds(agent.handle))).toEqual([]);
  });
});

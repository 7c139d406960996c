// The agent driven by the real docker CLI (28.x) over its unix socket: pull, run (attach, exit
// codes, --rm), detached web server with a published port, ps/logs/stop/rm/inspect, isolation and
// limits, volumes, labels, restart policies, events — on the real kernel with the real shim and a
// real registry on loopback. Bridge networking uses a bridge, subnet (198.18.0.0/15) and iptables
// chains of this file's own.
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { BUSYBOX_CONFIG, FIXTURE_TAGS, layoutImage } from "../../test/support/busybox-image";
import { IngressProxy } from "../src/ingress";
import type { HostNetwork } from "../src/network";
import { sh, shQuiet } from "./support/network-helpers";
import {
  docker,
  dockerOk,
  freePort,
  freeSubnet,
  HAS_BRIDGE_TOOLS,
  HAS_DOCKER_CLI,
  IS_ROOT,
  knownIds,
  leftovers,
  rawRequest,
  startTestAgent,
  testNetwork,
  waitFor,
  type TestAgent,
} from "./docker-helpers";

const BRIDGE = "fltdcli0";
let registry: TestRegistry;
let agent: TestAgent;
let network: HostNetwork | null = null;
let image: string;
let env: NodeJS.ProcessEnv;
const everSeen = new Set<string>();

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- inspect output is checked field by field
async function inspect(name: string): Promise<Record<string, any>> {
  const [c] = JSON.parse(await dockerOk(env, ["inspect", name]));
  everSeen.add(c.Id);
  return c;
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("docker CLI against the agent", () => {
  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    const dir = fs.mkdtempSync("/tmp/flotilla-dcli-");
    if (HAS_BRIDGE_TOOLS) network = testNetwork(`${dir}/root`, { bridge: BRIDGE, subnet: freeSubnet(100), chainPrefix: "FLTDCLI" });
    const t0 = performance.now();
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], network });
    // Start-up budget of the brief: well under a second (here with the bridge set up too).
    expect(performance.now() - t0).toBeLessThan(1000);
    env = agent.env;
  });

  afterAll(async () => {
    if (agent) {
      for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
      await agent.handle.close();
      await network?.teardown();
      fs.rmSync(agent.dir, { recursive: true, force: true });
    }
    await registry?.stop();
  });

  it("negotiates API 1.41 with the CLI and answers version and info", async () => {
    const v = JSON.parse(await dockerOk(env, ["version", "--format", "{{json .}}"]));
    expect(v.Client.ApiVersion).toBe("1.41");
    expect(v.Server).toMatchObject({ ApiVersion: "1.41", MinAPIVersion: "1.12", Os: "linux" });
    const info = JSON.parse(await dockerOk(env, ["info", "--format", "{{json .}}"]));
    expect(info).toMatchObject({ Driver: "overlay2", OSType: "linux", ServerVersion: "0.1.0" });
    expect(info.NCPU).toBeGreaterThan(0);
    expect(info.MemTotal).toBeGreaterThan(0);
    expect(["1", "2"]).toContain(info.CgroupVersion);
    const ping = await rawRequest(agent.socket, "HEAD", "/_ping");
    expect(ping.status).toBe(200);
    expect(ping.headers).toMatchObject({ "api-version": "1.41", ostype: "linux", "docker-experimental": "false" });
  });

  it("pulls with docker pull (progress) and lists with docker images", async () => {
    const pull = await docker(env, ["pull", image]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout).toContain("Pull complete");
    expect(pull.stdout).toContain(`Status: Downloaded newer image for ${image}`);
    const id = layoutImage(FIXTURE_TAGS.busybox).configDigest!;
    const rows = await dockerOk(env, ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    expect(rows).toContain(`${image} ${id.slice(7, 19)}`);
    // A second pull is up to date.
    expect(await dockerOk(env, ["pull", image])).toContain("Image is up to date");
  });

  it("docker run --rm prints the output and propagates the exit code", async () => {
    const hello = await docker(env, ["run", "--rm", image, "echo", "hello", "world"]);
    expect(hello).toMatchObject({ code: 0, stdout: "hello world\n" });
    const both = await docker(env, ["run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(both).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" });
    // --rm: nothing remains.
    expect(await dockerOk(env, ["ps", "-aq"])).toBe("");
  });

  it("applies the image defaults (Cmd, WorkingDir, Env) and -e/-w/-u overrides", async () => {
    const r = await dockerOk(env, ["run", "--rm", image, "sh", "-c", "pwd; echo $FLOTILLA_FIXTURE; id -u"]);
    expect(r.split("\n")).toEqual([BUSYBOX_CONFIG.WorkingDir, "busybox", "0"]);
    const o = await dockerOk(env, [
      "run",
      "--rm",
      "-e",
      "FLOTILLA_FIXTURE=over",
      "-w",
      "/root",
      "-u",
      "nobody",
      image,
      "sh",
      "-c",
      "pwd; echo $FLOTILLA_FIXTURE; id -u",
    ]);
    expect(o.split("\n")).toEqual(["/root", "over", "65534"]);
  });

  it("runs a command that does not exist: 127, and a missing image from the registry: pulled on demand", async () => {
    const missing = await docker(env, ["run", "--rm", image, "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("executable file not found");
    const other = await registry.pushBusybox("other/busybox:v2");
    const pulled = await docker(env, ["run", "--rm", other, "true"]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).toContain(`Unable to find image '${other}' locally`);
    const unknown = await docker(env, ["run", "--rm", `${registry.host}/nope:latest`, "true"]);
    expect(unknown.code).toBe(125);
    expect(unknown.stderr).toMatch(/manifest unknown|not found/);
  });

  it.skipIf(!HAS_BRIDGE_TOOLS)("runs a detached web server with a published port: curl, ps, logs, inspect, stop, rm", async () => {
    expect(agent.handle.network, "bridge networking should be up in this suite").not.toBeNull();
    const port = await freePort();
    const id = await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "web",
      "-p",
      `${port}:80`,
      image,
      "sh",
      "-c",
      "echo serving; exec httpd -f -v -p 80 -h /etc",
    ]);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    everSeen.add(id);
    const body = await waitFor("the web server", async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/hostname`, { signal: AbortSignal.timeout(1000) });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    });
    expect(body.trim()).toBe(id.slice(0, 12));

    // The same host port again: Docker's message, exit 125, and the failed start leaves no netns.
    const clash = await docker(env, ["run", "-d", "--name", "clash", "-p", `${port}:80`, image, "true"]);
    expect(clash.code).toBe(125);
    expect(clash.stderr).toContain(`Bind for 0.0.0.0:${port} failed: port is already allocated`);
    const clashId = (await inspect("clash")).Id;
    // (web's own veth is on the bridge, rightly: only the clash's netns and cgroups count here)
    expect(leftovers(agent.root, [clashId], BRIDGE).filter((l) => !l.startsWith("veth on"))).toEqual([]);
    expect(fs.readdirSync(`/sys/class/net/${BRIDGE}/brif`)).toHaveLength(1);
    await dockerOk(env, ["rm", "clash"]);

    const ps = await dockerOk(env, ["ps", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Ports}}"]);
    expect(ps).toMatch(new RegExp(`^${id.slice(0, 12)} web Up .* 0\\.0\\.0\\.0:${port}->80/tcp`, "m"));
    expect(await dockerOk(env, ["logs", "web"])).toContain("serving");

    const c = await inspect("web");
    expect(c).toMatchObject({ Id: id, Name: "/web", Image: layoutImage(FIXTURE_TAGS.busybox).configDigest, RestartCount: 0 });
    expect(c.State).toMatchObject({
      Status: "running",
      Running: true,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      ExitCode: 0,
      Error: "",
    });
    expect(c.State.Pid).toBeGreaterThan(0);
    expect(c.Config).toMatchObject({ Image: image, Hostname: id.slice(0, 12), Tty: false, Labels: BUSYBOX_CONFIG.Labels });
    expect(c.HostConfig.PortBindings).toEqual({ "80/tcp": [{ HostIp: "", HostPort: String(port) }] });
    expect(c.NetworkSettings.Ports["80/tcp"]).toEqual([{ HostIp: "0.0.0.0", HostPort: String(port) }]);
    expect(c.NetworkSettings.IPAddress).toMatch(/^198\.18\./);
    expect(fs.existsSync(c.LogPath)).toBe(true);

    // httpd, as pid 1, ignores TERM: stop escalates to KILL after -t seconds.
    const t0 = Date.now();
    expect(await dockerOk(env, ["stop", "-t", "1", "web"])).toBe("web");
    expect(Date.now() - t0).toBeLessThan(5000);
    const stopped = await inspect("web");
    expect(stopped.State).toMatchObject({ Status: "exited", Running: false, ExitCode: 137 });
    expect(stopped.NetworkSettings.IPAddress).toBe("");
    await expect(fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) })).rejects.toThrow();
    expect(await dockerOk(env, ["rm", "web"])).toBe("web");
    expect((await docker(env, ["inspect", "web"])).code).not.toBe(0);
  });

  it.skipIf(!HAS_BRIDGE_TOOLS)(
    'HostPort "" gets a dynamic port, reachable on a host address from the agent\'s namespace, also through the ingress proxy',
    async () => {
      // The node's own address, as the control plane lists it in ingress backends: a 198.18 address
      // on a veth of the host (not loopback, not the bridge). The proxy's connection to it is
      // locally generated, so only the OUTPUT-chain DNAT can deliver it to the container.
      const link = "fltdclin0";
      const nodeIp = freeSubnet(180).replace(/\.0\/24$/, ".1");
      shQuiet("ip", "link", "del", link);
      sh("ip", "link", "add", link, "type", "veth", "peer", "name", `${link}p`);
      sh("ip", "addr", "add", `${nodeIp}/32`, "dev", link);
      sh("ip", "link", "set", link, "up");
      const proxy = new IngressProxy({ host: "127.0.0.1" });
      let id = "";
      try {
        const created = await rawRequest(
          agent.socket,
          "POST",
          "/containers/create",
          JSON.stringify({
            Image: image,
            Cmd: ["httpd", "-f", "-p", "80", "-h", "/etc"],
            HostConfig: { PortBindings: { "80/tcp": [{ HostPort: "" }] } },
          }),
        );
        expect(created.status, created.body).toBe(201);
        id = JSON.parse(created.body).Id;
        everSeen.add(id);
        expect((await rawRequest(agent.socket, "POST", `/containers/${id}/start`)).status).toBe(204);
        const c = await inspect(id);
        expect(c.HostConfig.PortBindings).toEqual({ "80/tcp": [{ HostIp: "", HostPort: "" }] });
        const [binding] = c.NetworkSettings.Ports["80/tcp"];
        expect(binding.HostIp).toBe("0.0.0.0");
        const hostPort = Number(binding.HostPort);
        expect(hostPort).toBeGreaterThan(0);
        const get = (url: string) => async () => {
          try {
            const res = await fetch(url, { headers: { connection: "close" }, signal: AbortSignal.timeout(1000) });
            return res.ok ? (await res.text()).trim() : null;
          } catch {
            return null;
          }
        };
        expect(await waitFor("the container on the node address", get(`http://${nodeIp}:${hostPort}/hostname`))).toBe(id.slice(0, 12));

        const ingressPort = await freePort();
        const applied = await proxy.apply({
          version: "1",
          ports: [{ port: ingressPort, protocol: "tcp", serviceId: "s", serviceName: "web", backends: [{ host: nodeIp, port: hostPort }] }],
        });
        expect(applied).toEqual({ errors: [] });
        expect(await waitFor("the container through the proxy", get(`http://127.0.0.1:${ingressPort}/hostname`))).toBe(id.slice(0, 12));
      } finally {
        await proxy.close();
        if (id) await dockerOk(env, ["rm", "-f", id]);
        shQuiet("ip", "link", "del", link);
      }
    },
  );

  it("stops a container that handles TERM at once, with its own exit code", async () => {
    const id = await dockerOk(env, ["run", "-d", image, "sh", "-c", "trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done"]);
    everSeen.add(id);
    const t0 = Date.now();
    await dockerOk(env, ["stop", id]);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await inspect(id)).State.ExitCode).toBe(7);
    expect(await dockerOk(env, ["logs", id])).toBe("bye");
    await dockerOk(env, ["rm", id]);
  });

  it("isolates: own pids, hostname, no mounting; memory limit OOM-kills with 137", async () => {
    const ps = await dockerOk(env, ["run", "--rm", "--hostname", "boat", image, "sh", "-c", "hostname; ps -o pid= | wc -l"]);
    const [hostname, count] = ps.split("\n");
    expect(hostname).toBe("boat");
    expect(Number(count)).toBeLessThanOrEqual(4); // sh, ps, wc (and the subshell)

    const mount = await docker(env, ["run", "--rm", image, "mount", "-t", "tmpfs", "none", "/mnt"]);
    expect(mount.code).not.toBe(0);
    expect(mount.stderr).toMatch(/permission denied|not permitted/i);

    const oom = await docker(env, ["run", "--name", "hog", "-m", "16m", image, "sh", "-c", "tail /dev/zero"]);
    expect(oom.code).toBe(137);
    expect(await dockerOk(env, ["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}}", "hog"])).toBe(
      `true 137 ${16 * 1024 * 1024}`,
    );
    everSeen.add((await inspect("hog")).Id);
    await dockerOk(env, ["rm", "hog"]);
  });

  it("enforces the pids limit", async () => {
    const r = await docker(env, [
      "run",
      "--rm",
      "--pids-limit",
      "5",
      image,
      "sh",
      "-c",
      "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
    ]);
    expect(r.stderr).toContain("can't fork");
  });

  it("manages volumes: create, ls, inspect, data across containers, in-use refusal, rm", async () => {
    expect(await dockerOk(env, ["volume", "create", "--label", "k=v", "data"])).toBe("data");
    expect(await dockerOk(env, ["volume", "ls", "--format", "{{.Driver}} {{.Name}}"])).toContain("local data");
    const [v] = JSON.parse(await dockerOk(env, ["volume", "inspect", "data"]));
    expect(v).toMatchObject({ Name: "data", Driver: "local", Scope: "local", Labels: { k: "v" } });
    expect(v.Mountpoint.startsWith(agent.root)).toBe(true);

    await dockerOk(env, ["run", "--rm", "-v", "data:/data", image, "sh", "-c", "echo persisted > /data/file"]);
    expect(await dockerOk(env, ["run", "--rm", "--mount", "type=volume,source=data,target=/in,readonly", image, "cat", "/in/file"])).toBe(
      "persisted",
    );
    // --rm removes anonymous volumes with the container; named ones stay.
    const before = await dockerOk(env, ["volume", "ls", "-q"]);
    await dockerOk(env, ["run", "--rm", "-v", "/anon", image, "sh", "-c", "echo x > /anon/f"]);
    expect(await dockerOk(env, ["volume", "ls", "-q"])).toBe(before);
    // On demand: a named volume that does not exist yet is created by the run.
    await dockerOk(env, ["run", "--rm", "-v", "fresh:/f", image, "true"]);
    expect(await dockerOk(env, ["volume", "ls", "-q"])).toContain("fresh");

    const holder = await dockerOk(env, ["create", "-v", "data:/data", image, "true"]);
    everSeen.add(holder);
    const inUse = await docker(env, ["volume", "rm", "data"]);
    expect(inUse.code).not.toBe(0);
    expect(inUse.stderr).toContain("volume is in use");
    await dockerOk(env, ["rm", holder]);
    expect(await dockerOk(env, ["volume", "rm", "data", "fresh"])).toBe("data\nfresh");
    expect((await docker(env, ["volume", "inspect", "data"])).stderr).toContain("no such volume");
  });

  it("binds host directories and tmpfs; honours --read-only", async () => {
    const host = fs.mkdtempSync(`${agent.dir}/bind-`);
    fs.writeFileSync(`${host}/in.txt`, "from host\n");
    const out = await dockerOk(env, [
      "run",
      "--rm",
      "--read-only",
      "-v",
      `${host}:/h`,
      "--tmpfs",
      "/scratch",
      image,
      "sh",
      "-c",
      "cat /h/in.txt; echo made > /h/out.txt; echo t > /scratch/t && echo tmpfs-ok; touch /rootfile || echo ro",
    ]);
    expect(out.split("\n")).toEqual(["from host", "tmpfs-ok", "ro"]);
    expect(fs.readFileSync(`${host}/out.txt`, "utf8")).toBe("made\n");
  });

  it("filters docker ps by label, name and status", async () => {
    const a = await dockerOk(env, ["run", "-d", "--name", "lab-a", "-l", "tier=front", "-l", "team=x", image, "sleep", "30"]);
    const b = await dockerOk(env, ["run", "-d", "--name", "lab-b", "-l", "tier=back", image, "sleep", "30"]);
    const c = await dockerOk(env, ["create", "--name", "lab-c", "-l", "tier=front", image, "true"]);
    for (const id of [a, b, c]) everSeen.add(id);
    const names = async (...args: string[]) =>
      (await dockerOk(env, ["ps", ...args, "--format", "{{.Names}}"])).split("\n").filter(Boolean).sort();
    expect(await names("--filter", "label=tier=front")).toEqual(["lab-a"]);
    expect(await names("-a", "--filter", "label=tier=front")).toEqual(["lab-a", "lab-c"]);
    expect(await names("--filter", "label=tier")).toEqual(["lab-a", "lab-b"]);
    expect(await names("--filter", "label=tier=front", "--filter", "label=team=x")).toEqual(["lab-a"]);
    expect(await names("-a", "--filter", "status=created")).toEqual(["lab-c"]);
    expect(await names("--filter", "name=lab-b")).toEqual(["lab-b"]);
    // name conflict, in Docker's words
    const dup = await docker(env, ["create", "--name", "lab-a", image, "true"]);
    expect(dup.stderr).toContain(
      `Conflict. The container name "/lab-a" is already in use by container "${a}". You have to remove (or rename) that container to be able to reuse that name.`,
    );
    const running = await docker(env, ["rm", "lab-a"]);
    expect(running.stderr).toContain("You cannot remove a running container");
    expect(await dockerOk(env, ["rm", "-f", "lab-a", "lab-b", "lab-c"])).toBe("lab-a\nlab-b\nlab-c");
  });

  it("restarts by policy: on-failure:2 gives up after two restarts; always survives a kill of its process", async () => {
    const id = await dockerOk(env, ["run", "-d", "--restart", "on-failure:2", image, "sh", "-c", "echo run; exit 1"]);
    everSeen.add(id);
    await waitFor("two restarts", async () => {
      const c = await inspect(id);
      return c.State.Status === "exited" && c.RestartCount === 2;
    });
    expect((await dockerOk(env, ["logs", id])).split("\n")).toEqual(["run", "run", "run"]);
    await dockerOk(env, ["rm", id]);

    const always = await dockerOk(env, ["run", "-d", "--restart", "always", image, "sleep", "60"]);
    everSeen.add(always);
    const pid = (await inspect(always)).State.Pid;
    process.kill(pid, "SIGKILL");
    await waitFor("the restart", async () => {
      const c = await inspect(always);
      return c.State.Running && c.RestartCount === 1 && c.State.Pid !== pid;
    });
    // docker stop is a manual stop: no restart after it.
    await dockerOk(env, ["stop", "-t", "0", always]);
    await new Promise((r) => setTimeout(r, 500));
    expect((await inspect(always)).State.Status).toBe("exited");
    await dockerOk(env, ["rm", always]);
  });

  it("streams events: create, start, die (exit code), destroy", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = await dockerOk(env, ["run", "-d", "--name", "evt", "-l", "e=1", image, "sh", "-c", "exit 4"]);
    everSeen.add(id);
    await waitFor("exit", async () => (await inspect(id)).State.Status === "exited");
    await dockerOk(env, ["rm", "evt"]);
    const until = Math.ceil(Date.now() / 1000) + 1;
    const out = await dockerOk(env, [
      "events",
      "--since",
      String(since),
      "--until",
      String(until),
      "--filter",
      "container=evt",
      "--format",
      "{{json .}}",
    ]);
    const events = out.split("\n").map((l) => JSON.parse(l));
    expect(events.map((e) => e.Action)).toEqual(["create", "start", "die", "destroy"]);
    expect(events[2].Actor.Attributes).toMatchObject({ exitCode: "4", name: "evt", image, e: "1" });
    expect(events[0]).toMatchObject({ Type: "container", Actor: { ID: id }, scope: "local" });
  });

  it("logs with --tail, --timestamps and -f until the container exits", async () => {
    const id = await dockerOk(env, ["run", "-d", image, "sh", "-c", "for i in 1 2 3 4; do echo line$i; sleep 0.2; done; echo gone >&2"]);
    everSeen.add(id);
    const follow = await docker(env, ["logs", "-f", id]);
    expect(follow.stdout).toBe("line1\nline2\nline3\nline4\n");
    expect(follow.stderr).toBe("gone\n");
    expect(await docker(env, ["logs", "--tail", "2", id])).toMatchObject({ code: 0, stdout: "line4\n", stderr: "gone\n" });
    const ts = await docker(env, ["logs", "-t", "--tail", "1", id]);
    expect(ts.stderr).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z gone\n$/);
    await dockerOk(env, ["rm", id]);
  });

  it("runs with --network none (loopback only) and --network host (the host's interfaces)", async () => {
    const none = await dockerOk(env, ["run", "--rm", "--network", "none", image, "sh", "-c", "ls /sys/class/net"]);
    expect(none.split(/\s+/)).toEqual(["lo"]);
    const host = await dockerOk(env, ["run", "--rm", "--network", "host", image, "sh", "-c", "ls /sys/class/net"]);
    // The host's own devices (other suites may add veths meanwhile, so not the exact list).
    expect(host.split(/\s+/)).toEqual(expect.arrayContaining(["lo", "eth0"].filter((d) => fs.existsSync(`/sys/class/net/${d}`))));
    expect(host.split(/\s+/).length).toBeGreaterThan(1);
    const bad = await docker(env, ["run", "--rm", "--network", "none", "-p", "1234:80", image, "true"]);
    expect(bad.code).toBe(125);
  });

  it("kill -s, restart and wait", async () => {
    const id = await dockerOk(env, ["run", "-d", image, "sh", "-c", "trap 'echo usr1' USR1; while true; do sleep 0.1; done"]);
    everSeen.add(id);
    await dockerOk(env, ["kill", "-s", "USR1", id]);
    await waitFor("the trap", async () => (await dockerOk(env, ["logs", id])).includes("usr1"));
    expect((await inspect(id)).State.Running).toBe(true);
    const before = (await inspect(id)).State.StartedAt;
    await dockerOk(env, ["restart", "-t", "0", id]);
    const after = await inspect(id);
    expect(after.State.Running).toBe(true);
    expect(after.State.StartedAt > before).toBe(true);
    const waiting = docker(env, ["wait", id]);
    await dockerOk(env, ["kill", id]);
    expect((await waiting).stdout.trim()).toBe("137");
    const notRunning = await docker(env, ["kill", id]);
    expect(notRunning.stderr).toContain("is not running");
    await dockerOk(env, ["rm", id]);
  });

  it("protects images in use: docker rmi refuses, tag and untag work", async () => {
    await dockerOk(env, ["tag", image, "local/alias:v1"]);
    expect(await dockerOk(env, ["images", "--format", "{{.Repository}}:{{.Tag}}", "local/alias"])).toBe("local/alias:v1");
    expect(await dockerOk(env, ["rmi", "local/alias:v1"])).toBe("Untagged: local/alias:v1");
    // Removing one of several tags only untags (in use or not); the last one is protected.
    expect(await dockerOk(env, ["rmi", `${registry.host}/other/busybox:v2`])).toBe(`Untagged: ${registry.host}/other/busybox:v2`);
    const holder = await dockerOk(env, ["create", image, "true"]);
    everSeen.add(holder);
    const refused = await docker(env, ["rmi", image]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("is being used by a container");
    expect(await dockerOk(env, ["images", "-q"])).not.toBe("");
    await dockerOk(env, ["rm", holder]);
  });

  it("prunes stopped containers and unused volumes", async () => {
    const stopped = await dockerOk(env, ["create", "-l", "prune=yes", image, "true"]);
    const kept = await dockerOk(env, ["create", "-l", "prune=no", "-v", "inuse:/d", image, "true"]);
    await dockerOk(env, ["volume", "create", "unused"]);
    for (const id of [stopped, kept]) everSeen.add(id);
    const pruned = await dockerOk(env, ["container", "prune", "-f", "--filter", "label=prune=yes"]);
    expect(pruned).toContain(stopped);
    expect(pruned).not.toContain(kept);
    const vols = await dockerOk(env, ["volume", "prune", "-f"]);
    expect(vols).toContain("unused");
    expect(vols).not.toContain("inuse");
    await dockerOk(env, ["rm", kept]);
    await dockerOk(env, ["volume", "rm", "inuse"]);
  });

  it("answers bad input in Docker's error shape and leaves nothing behind", async () => {
    const s = agent.socket;
    const bad = await rawRequest(s, "POST", "/v1.41/containers/create", "{not json");
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).message).toMatch(/invalid JSON/);
    const noImage = await rawRequest(s, "POST", "/containers/create", JSON.stringify({ Image: "nothere:1" }));
    expect(noImage).toMatchObject({ status: 404, body: '{"message":"No such image: nothere:1"}\n' });
    const noContainer = await rawRequest(s, "GET", "/v1.41/containers/nope/json");
    expect(noContainer).toMatchObject({ status: 404, body: '{"message":"No such container: nope"}\n' });
    const badPort = await rawRequest(
      s,
      "POST",
      "/containers/create",
      JSON.stringify({ Image: image, HostConfig: { PortBindings: { "99999/tcp": [{ HostPort: "80" }] } } }),
    );
    expect(badPort.status).toBe(400);
    expect(JSON.parse(badPort.body).message).toContain("invalid port specification");
    const badHostPort = await rawRequest(
      s,
      "POST",
      "/containers/create",
      JSON.stringify({ Image: image, HostConfig: { PortBindings: { "80/tcp": [{ HostPort: "http" }] } } }),
    );
    expect(badHostPort.status).toBe(400);
    const badName = await rawRequest(s, "POST", "/containers/create?name=-bad", JSON.stringify({ Image: image }));
    expect(badName.status).toBe(400);
    expect(JSON.parse(badName.body).message).toContain("Invalid container name");
    const tooNew = await rawRequest(s, "GET", "/v1.99/version");
    expect(tooNew.status).toBe(400);
    expect(JSON.parse(tooNew.body).message).toContain("Maximum supported API version is 1.41");
    expect((await rawRequest(s, "GET", "/v1.41/nothing/here")).status).toBe(404);
    expect((await rawRequest(s, "POST", "/containers/nope/start")).status).toBe(404);
    // A start that fails (bad user) leaves the container created, with the error recorded.
    const created = JSON.parse(
      (await rawRequest(s, "POST", "/containers/create", JSON.stringify({ Image: image, User: "nosuchuser", Cmd: ["true"] }))).body,
    );
    everSeen.add(created.Id);
    const start = await rawRequest(s, "POST", `/containers/${created.Id}/start`);
    expect(start.status).toBe(400);
    expect(JSON.parse(start.body).message).toContain("unable to find user nosuchuser");
    expect((await inspect(created.Id)).State.Status).toBe("created");
    await dockerOk(env, ["rm", created.Id]);
    // Nothing refused above left a directory behind.
    expect(fs.readdirSync(`${agent.root}/containers`)).toEqual([]);
  });

  it("leaves no mounts, cgroups, namespaces or veths behind", async () => {
    await waitFor("every container gone", () => agent.handle.containers.all().length === 0 || null);
    expect(leftovers(agent.root, [...everSeen, ...knownIds(agent.handle)], network ? BRIDGE : undefined)).toEqual([]);
  });
});

// Finding 6 of issue 11: --cap-drop, --dns, --add-host, --init, --ulimit, --security-opt and
// --log-opt were accepted and did nothing. With the real docker CLI: each is honoured inside the
// container, or refused with the option named. Host-network containers lose NET_RAW (finding 7).
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { docker, dockerOk, HAS_DOCKER_CLI, IS_ROOT, rawRequest, startTestAgent, stopTestAgent, type TestAgent } from "./docker-helpers";

const capEff = (status: string) => /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1];

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("HostConfig options through the docker CLI", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let env: NodeJS.ProcessEnv;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({ dir: fs.mkdtempSync("/tmp/flotilla-s11-hostopts-"), insecureRegistries: [registry.host] });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    await stopTestAgent(agent);
    await registry?.stop();
  });

  const run = (...args: string[]) => dockerOk(env, ["run", "--rm", ...args]);

  it("--cap-drop removes the capability from the container", async () => {
    expect(capEff(await run(image, "cat", "/proc/self/status"))).toBe("00000000a80425fb");
    expect(capEff(await run("--cap-drop", "NET_RAW", image, "cat", "/proc/self/status"))).toBe("00000000a80405fb");
    expect(capEff(await run("--cap-drop", "ALL", image, "cat", "/proc/self/status"))).toBe("0000000000000000");
    const chown = await docker(env, ["run", "--rm", "--cap-drop", "chown", image, "sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f"]);
    expect(chown.code).toBe(1);
    expect(chown.stderr).toContain("Operation not permitted");
    const inspect = JSON.parse(
      await dockerOk(env, ["create", "--cap-drop", "MKNOD", image, "true"]).then((id) => dockerOk(env, ["inspect", id])),
    );
    expect(inspect[0].HostConfig.CapDrop).toEqual(["CAP_MKNOD"]);
  });

  it("--cap-add gives back a default capability, and refuses one beyond the default set", async () => {
    expect(capEff(await run("--cap-drop", "ALL", "--cap-add", "KILL", image, "cat", "/proc/self/status"))).toBe("0000000000000020");
    const r = await docker(env, ["run", "--rm", "--cap-add", "SYS_ADMIN", image, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("--cap-add SYS_ADMIN is not supported");
  });

  it("a host-network container has no NET_RAW unless it asks", async () => {
    expect(capEff(await run("--network", "host", image, "cat", "/proc/self/status"))).toBe("00000000a80405fb");
    expect(capEff(await run("--network", "host", "--cap-add", "NET_RAW", image, "cat", "/proc/self/status"))).toBe("00000000a80425fb");
  });

  it("--dns, --dns-search and --dns-option make the container's resolv.conf", async () => {
    const resolv = await run(
      "--dns",
      "198.18.0.53",
      "--dns-search",
      "flotilla.test",
      "--dns-option",
      "ndots:2",
      image,
      "cat",
      "/etc/resolv.conf",
    );
    expect(resolv.split("\n")).toEqual(["nameserver 198.18.0.53", "search flotilla.test", "options ndots:2"]);
    const bad = await docker(env, ["run", "--rm", "--dns-option", "ndots:2\nnameserver 1.1.1.1", image, "true"]);
    expect(bad.code).toBe(125);
  });

  it("--add-host adds the name to /etc/hosts", async () => {
    const hosts = await run("--add-host", "db.flotilla.test:198.18.0.9", image, "cat", "/etc/hosts");
    expect(hosts).toContain("198.18.0.9\tdb.flotilla.test");
    expect(
      await run("--add-host", "db.flotilla.test:198.18.0.9", image, "ping", "-c", "1", "-W", "1", "-q", "db.flotilla.test").catch(
        (e: Error) => e.message,
      ),
    ).toContain("198.18.0.9");
  });

  it("--security-opt no-new-privileges is honoured (always on); others are refused by name", async () => {
    expect(await run("--security-opt", "no-new-privileges", image, "grep", "NoNewPrivs", "/proc/self/status")).toMatch(/NoNewPrivs:\s+1/);
    for (const opt of ["seccomp=unconfined", "apparmor=unconfined", "label=disable"]) {
      const r = await docker(env, ["run", "--rm", "--security-opt", opt, image, "true"]);
      expect(r.code, opt).toBe(125);
      expect(r.stderr).toContain(`--security-opt ${opt} is not supported by this agent`);
    }
  });

  it("--log-opt max-size/max-file rotate the json-file log; --tail 1 reads its end (finding 5)", async () => {
    const id = await dockerOk(env, [
      "run",
      "-d",
      "--log-opt",
      "max-size=64k",
      "--log-opt",
      "max-file=2",
      image,
      "sh",
      "-c",
      "seq 1 50000; echo last",
    ]);
    expect(await dockerOk(env, ["wait", id])).toBe("0");
    const log = agent.handle.containers.store.paths(id).log;
    expect(fs.statSync(log).size).toBeLessThanOrEqual(64 * 1024);
    expect(fs.statSync(`${log}.1`).size).toBeLessThanOrEqual(64 * 1024);
    expect(fs.existsSync(`${log}.2`)).toBe(false);
    expect(await dockerOk(env, ["logs", "--tail", "1", id])).toBe("last");
    const all = (await dockerOk(env, ["logs", id])).split("\n");
    expect(all.at(-1)).toBe("last");
    expect(all.length).toBeLessThan(50_000); // the oldest output was rotated away
    const inspect = JSON.parse(await dockerOk(env, ["inspect", id]))[0];
    expect(inspect.HostConfig.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": "64k", "max-file": "2" } });
    const bad = await docker(env, ["create", "--log-opt", "compress=true", image, "true"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--log-opt compress is not supported by this agent");
  });

  it("without --log-opt a chatty container's log stays within Docker's default 10 MiB × 3 (finding 5)", async () => {
    // 40 MiB of output in 64 KiB lines: before, one json-file that grew with every byte.
    const script = 's=xxxxxxxxxxxxxxxx; for i in 1 2 3 4 5 6; do s=$s$s$s$s; done; yes "$s" | head -n 640; echo last';
    const id = await dockerOk(env, ["run", "-d", image, "sh", "-c", script]);
    expect(await dockerOk(env, ["wait", id], 120_000)).toBe("0");
    const log = agent.handle.containers.store.paths(id).log;
    const files = [log, `${log}.1`, `${log}.2`];
    for (const f of files) expect(fs.statSync(f).size, f).toBeLessThanOrEqual(10 * 1024 * 1024);
    expect(fs.existsSync(`${log}.3`)).toBe(false);
    expect(await dockerOk(env, ["logs", "--tail", "1", id])).toBe("last");
  }, 180_000);

  it("refuses --init, --ulimit, --shm-size and the like with a 501 naming the option, creating nothing", async () => {
    const before = agent.handle.containers.all().length;
    for (const [args, message] of [
      [["--init"], "--init is not supported by this agent"],
      [["--ulimit", "nofile=10:10"], "--ulimit is not supported by this agent"],
      [["--shm-size", "1g"], "--shm-size is not supported by this agent"],
      [["--pid", "host"], "--pid is not supported by this agent"],
      [["--oom-score-adj", "500"], "--oom-score-adj is not supported by this agent"],
    ] as const) {
      const r = await docker(env, ["create", ...args, image, "true"]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toContain(message);
    }
    expect(agent.handle.containers.all().length).toBe(before);
    const raw = await rawRequest(
      agent.socket,
      "POST",
      "/v1.41/containers/create",
      JSON.stringify({ Image: image, Cmd: ["true"], HostConfig: { Init: true } }),
    );
    expect(raw.status).toBe(501);
    expect(JSON.parse(raw.body).message).toBe("--init is not supported by this agent (HostConfig.Init)");
  });
});

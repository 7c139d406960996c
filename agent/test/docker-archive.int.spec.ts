// docker export and docker cp with a stopped container, and the end of exec records, driven by
// the real docker CLI (28.x) against an agent in this process: real shim, real kernel, a real
// registry on loopback. A stopped container's file system is mounted only for the request, in
// a mount namespace of a helper process: nothing may stay mounted anywhere afterwards.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
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
  type TestAgent,
} from "./docker-helpers";

let registry: TestRegistry;
let agent: TestAgent;
let image: string;
let env: NodeJS.ProcessEnv;

/** Runs `cmd` to its end without blocking the event loop (the agent answers in this process). */
function collect(cmd: string, args: string[], input?: Buffer): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { PATH: process.env.PATH, HOME: env.DOCKER_CONFIG, ...env } });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** `docker export NAME | tar t` (or `tar xO MEMBER`), with the real CLI and the host's tar. */
async function exported(name: string, member?: string): Promise<string> {
  const cli = await collect("docker", ["export", name]);
  if (cli.code !== 0) throw new Error(`docker export ${name}: ${cli.stderr}`);
  const tar = await collect("tar", member ? ["xO", member] : ["t"], cli.stdout);
  if (tar.code !== 0) throw new Error(`tar: ${tar.stderr}`);
  return tar.stdout.toString();
}

const exportList = async (name: string) => (await exported(name)).trim().split("\n");

/** Mounts, in any process's namespace, that mention `path`. */
function mountsAnywhere(path: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let info: string;
    try {
      info = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    for (const line of info.split("\n")) if (line.includes(path)) found.push(`${pid}: ${line}`);
  }
  return found;
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("docker export, cp with a stopped container, exec records", () => {
  beforeAll(async () => {
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({
      dir: fs.mkdtempSync("/tmp/flotilla-darc-"),
      insecureRegistries: [registry.host],
      network: null,
      execRetention: { maxEndedPerContainer: 2 },
    });
    env = agent.env;
    await dockerOk(env, ["pull", image]);
  });

  afterAll(async () => {
    await stopTestAgent(agent);
    await registry?.stop();
  });

  it("docker export gives the container's files (its own changes included) running or stopped, nothing of /proc or volumes", async () => {
    await dockerOk(env, [
      "run",
      "-d",
      "--name",
      "ex",
      "-v",
      "/vol",
      image,
      "sh",
      "-c",
      "echo hi > /tmp/wrote; rm /bin/vi; touch /vol/inside; exec sleep 3600",
    ]);
    await waitFor("the container's write", async () => (await docker(env, ["exec", "ex", "test", "-f", "/vol/inside"])).code === 0);
    const running = await exportList("ex");
    expect(running).toEqual(expect.arrayContaining(["tmp/wrote", "bin/sh", "etc/passwd"]));
    expect(running).not.toContain("bin/vi");
    // The mount points are there, empty, as in dockerd's export; nothing mounted on them is.
    expect(running).toEqual(expect.arrayContaining(["proc/", "sys/", "vol/"]));
    expect(running.filter((p) => /^(proc|sys|vol)\/./.test(p) || p.startsWith("./"))).toEqual([]);
    await dockerOk(env, ["stop", "-t", "0", "ex"]);
    const stopped = await exportList("ex");
    expect(stopped).toEqual(expect.arrayContaining(["tmp/wrote", "bin/sh"]));
    expect(stopped).not.toContain("bin/vi");
    expect(await exported("ex", "tmp/wrote")).toBe("hi\n");
    expect((await docker(env, ["export", "nope"])).stderr).toContain("No such container: nope");
    const c = agent.handle.containers.get("ex");
    expect(mountsAnywhere(agent.handle.containers.store.paths(c.id).dir)).toEqual([]);
    await dockerOk(env, ["rm", "ex"]);
  });

  it("docker cp both ways with a created and an exited container; links never lead out; nothing stays mounted", async () => {
    const host = fs.mkdtempSync("/tmp/flotilla-cps-");
    const target = fs.mkdtempSync("/var/tmp/flotilla-cps-target-"); // exists on the host only
    fs.writeFileSync(`${host}/secret`, "HOST SECRET\n");
    fs.writeFileSync(`${host}/in.txt`, "into the stopped container\n");
    try {
      // created, never started: cp in, then the container sees the file when it runs
      await dockerOk(env, ["create", "--name", "cr", image, "cat", "/tmp/in.txt"]);
      await dockerOk(env, ["cp", `${host}/in.txt`, "cr:/tmp/"]);
      expect(await dockerOk(env, ["start", "-a", "cr"])).toBe("into the stopped container");
      // exited: cp out what it wrote, cp in over a file
      const script = `echo made-inside > /made; ln -s ${host} /tmp/abs; ln -s ../../../../../..${host} /tmp/rel; ln -s ${target} /tmp/evil`;
      await dockerOk(env, ["run", "--name", "exd", image, "sh", "-c", script]);
      expect(await dockerOk(env, ["inspect", "-f", "{{.State.Status}}", "exd"])).toBe("exited");
      await dockerOk(env, ["cp", "exd:/made", `${host}/made.out`]);
      expect(fs.readFileSync(`${host}/made.out`, "utf8")).toBe("made-inside\n");
      await dockerOk(env, ["cp", "exd:/etc/passwd", `${host}/passwd.out`]);
      expect(fs.readFileSync(`${host}/passwd.out`, "utf8")).toMatch(/^root:x:0:0:/);
      await dockerOk(env, ["cp", `${host}/in.txt`, "exd:/made"]);
      await dockerOk(env, ["cp", "exd:/made", `${host}/made2.out`]);
      expect(fs.readFileSync(`${host}/made2.out`, "utf8")).toBe("into the stopped container\n");
      // out through links: resolved inside the container, where the host path does not exist
      for (const link of ["/tmp/abs/secret", "/tmp/rel/secret"]) {
        const r = await docker(env, ["cp", `exd:${link}`, `${host}/stolen`]);
        expect(r.code, link).not.toBe(0);
        expect(r.stderr).toContain("Could not find the file");
        expect(fs.existsSync(`${host}/stolen`)).toBe(false);
      }
      // in through a link: refused, the host directory stays empty
      expect((await docker(env, ["cp", `${host}/in.txt`, "exd:/tmp/evil/"])).code).not.toBe(0);
      expect(fs.readdirSync(target)).toEqual([]);
      expect((await docker(env, ["cp", "exd:/no/such", `${host}/x`])).stderr).toContain("Could not find the file /no/such in container");
      // what was copied in is the container's own change, and it starts with it
      expect(await dockerOk(env, ["diff", "exd"])).toContain("A /made");
      for (const name of ["cr", "exd"]) {
        const c = agent.handle.containers.get(name);
        expect(mountsAnywhere(agent.handle.containers.store.paths(c.id).dir)).toEqual([]);
      }
      await dockerOk(env, ["rm", "cr", "exd"]);
    } finally {
      fs.rmSync(host, { recursive: true, force: true });
      fs.rmSync(target, { recursive: true, force: true });
    }
  });

  it("finished exec records are dropped beyond the container's bound, state dirs too; a resize of a non-tty exec is accepted as dockerd does", async () => {
    await dockerOk(env, ["run", "-d", "--name", "xr", image, "sleep", "3600"]);
    const c = agent.handle.containers.get("xr");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const create = await rawRequest(agent.socket, "POST", "/v1.41/containers/xr/exec", JSON.stringify({ Cmd: ["true"] }));
      expect(create.status).toBe(201);
      const id = JSON.parse(create.body).Id as string;
      ids.push(id);
      expect((await rawRequest(agent.socket, "POST", `/v1.41/exec/${id}/start`, JSON.stringify({ Detach: true }))).status).toBe(200);
      await waitFor(
        `exec ${i} to end`,
        async () => !JSON.parse((await rawRequest(agent.socket, "GET", `/v1.41/exec/${id}/json`)).body).Running,
      );
    }
    // The next create prunes: two finished ones stay (the newest), the older two are gone.
    await dockerOk(env, ["exec", "xr", "true"]);
    for (const [i, id] of ids.entries()) {
      const r = await rawRequest(agent.socket, "GET", `/v1.41/exec/${id}/json`);
      if (i < 2) {
        expect(r.status, `exec ${i}`).toBe(404);
        expect(r.body).toContain(`No such exec instance: ${id}`);
        expect(fs.existsSync(join(agent.handle.containers.store.paths(c.id).dir, "exec", id))).toBe(false);
      }
    }
    expect(agent.handle.execs.size, JSON.stringify(agent.handle.execs.list())).toBeLessThanOrEqual(3);
    // A resize of a running exec without a tty: dockerd answers 200 and nothing happens.
    const create = await rawRequest(agent.socket, "POST", "/v1.41/containers/xr/exec", JSON.stringify({ Cmd: ["sleep", "1000"] }));
    const id = JSON.parse(create.body).Id as string;
    expect((await rawRequest(agent.socket, "POST", `/v1.41/exec/${id}/start`, JSON.stringify({ Detach: true }))).status).toBe(200);
    expect((await rawRequest(agent.socket, "POST", `/v1.41/exec/${id}/resize?h=10&w=10`)).status).toBe(200);
    // Removing the container takes every record with it, the running one included.
    await dockerOk(env, ["rm", "-f", "xr"]);
    expect((await rawRequest(agent.socket, "GET", `/v1.41/exec/${id}/json`)).status).toBe(404);
    expect(agent.handle.execs.size).toBe(0);
  });

  it("leaves no mounts or cgroups behind", async () => {
    for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true });
    expect(leftovers(agent.root, knownIds(agent.handle))).toEqual([]);
    expect(mountsAnywhere(agent.root)).toEqual([]);
  });
});

// End to end, on one netns machine made with `ctl machine create`: docker-machine's
// --engine-registry-mirror (Docker Hub images come through a local registry standing in for the
// mirror: no Docker Hub is reachable here, so a pull of `busybox` can only succeed through it),
// and `ctl machine mount` with the real sshfs over the machine's sshd. Traffic stays on loopback
// and in 198.19.150.0/24, on a bridge this test makes.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { startRegistry, type TestRegistry } from "../support/registry";
import { addBridge, forward, parseExports, removeLeftovers, run, useMachinesEnv } from "./support";
import { testBridge } from "../support/leftovers";

const repo = resolve(__dirname, "../..");
const root = process.getuid?.() === 0;
const have = (tool: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const tag = process.pid.toString(36);
const BRIDGE = testBridge("flmir");
const GATEWAY = "198.19.150.1";

describe.skipIf(!root || !have("docker") || !have("sshfs"))("machine engine options and mount, end to end (netns)", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-engine-"));
  const name = `mirror-${tag}`;
  const mnt = join(base, "mnt");
  let api: TestApi;
  let registry: TestRegistry;
  let forwarder: Server | undefined;
  let env: Record<string, string | undefined>;
  let dockerEnv: Record<string, string | undefined>;
  let restoreEnv: (() => void) | undefined;
  const regPort = 40000 + ((process.pid + 7) % 20000);
  const apiPort = regPort + 1;
  const mirror = `http://${GATEWAY}:${regPort}`;

  const ctl = (args: string[], extra: Record<string, string | undefined> = {}) =>
    run(process.execPath, ["--import", "tsx", join(repo, "apps/ctl/src/main.ts"), ...args], { ...env, ...extra });

  beforeAll(async () => {
    addBridge(BRIDGE, GATEWAY);
    restoreEnv = useMachinesEnv(base, `http://${GATEWAY}:${apiPort}`);
    api = await startTestApi({ FLOTILLA_AGENT_LISTEN: `${GATEWAY}:${apiPort}`, FLOTILLA_HEARTBEAT_MS: "1000" });
    registry = await startRegistry();
    // The mirror holds Docker Hub's repository name for busybox, as a pull-through cache would.
    await registry.pushBusybox("library/busybox:latest");
    forwarder = await forward(GATEWAY, regPort, Number(registry.host.split(":")[1]));
    mkdirSync(mnt);
    env = {
      PATH: process.env.PATH,
      HOME: join(base, "home"),
      FLOTILLA_CONFIG_DIR: api.config.configDir,
      TSX_TSCONFIG_PATH: join(repo, "apps/ctl/tsconfig.json"),
      DOCKER_CONFIG: join(base, "docker-config"),
    };
    const create = await ctl([
      "machine",
      "create",
      "-d",
      "netns",
      "--netns-cidr",
      `${GATEWAY}/24`,
      "--netns-bridge",
      BRIDGE,
      "--engine-registry-mirror",
      mirror,
      name,
    ]);
    expect(create.code, create.stderr).toBe(0);
    dockerEnv = { ...env, ...parseExports((await ctl(["machine", "env", name])).stdout) };
  }, 300_000);

  afterAll(async () => {
    try {
      execFileSync("fusermount3", ["-u", mnt], { stdio: "ignore" });
    } catch {
      // not mounted
    }
    forwarder?.close();
    if (api) {
      await ctl(["machine", "rm", "-f", "-y", name]).catch(() => undefined);
      await api.stop();
    }
    restoreEnv?.();
    await registry?.stop();
    removeLeftovers([name], BRIDGE);
    rmSync(base, { recursive: true, force: true });
  });

  it("create --help lists --engine-registry-mirror", async () => {
    const r = await ctl(["machine", "create", "--help", "-d", "netns"]);
    expect(r.stdout).toContain("--engine-registry-mirror");
  });

  it("refuses a mirror that is not an http(s) URL, naming the flag, and keeps nothing", async () => {
    const r = await ctl(["machine", "create", "-d", "netns", "--engine-registry-mirror", `${GATEWAY}:${regPort}`, `bad-${tag}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `ctl: --engine-registry-mirror: registry mirror "${GATEWAY}:${regPort}": not a URL (want http(s)://host[:port])\n`,
    );
    expect((await ctl(["machine", "ls", "-q"])).stdout).toBe(`${name}\n`);
  });

  it("pulls a Docker Hub image through the mirror and shows it in docker info", { timeout: 180_000 }, async () => {
    const info = await run("docker", ["info", "--format", "{{json .RegistryConfig.Mirrors}}"], dockerEnv);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toEqual([`${mirror}/`]);

    const pull = await run("docker", ["pull", "busybox"], dockerEnv);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout).toContain("Status: Downloaded newer image for busybox:latest");
    // Recorded as Docker Hub's image, not the mirror's.
    const images = await run("docker", ["images", "--format", "{{.Repository}}:{{.Tag}}"], dockerEnv);
    expect(images.stdout.trim().split("\n")).toEqual(["busybox:latest"]);
    const hello = await run("docker", ["run", "--rm", "busybox", "echo", "hello", "from", "the", "mirror"], dockerEnv);
    expect(hello, hello.stderr).toMatchObject({ code: 0, stdout: "hello from the mirror\n" });

    // A registry other than Docker Hub is never asked through the mirror.
    const other = await run("docker", ["pull", `${GATEWAY}:${regPort + 2}/busybox:latest`], dockerEnv, 60_000);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain(`${GATEWAY}:${regPort + 2}`);
  });

  it("mounts a machine directory with sshfs, both ways, and unmounts it", { timeout: 120_000 }, async () => {
    const remote = "/var/lib/flotilla-agent/shared";
    const mk = await ctl(["machine", "ssh", name, `mkdir -p ${remote} && echo 'from the machine' > ${remote}/a.txt`]);
    expect(mk.code, mk.stderr).toBe(0);

    const mount = await ctl(["machine", "mount", `${name}:${remote}`, mnt]);
    expect(mount.code, mount.stderr).toBe(0);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toMatch(new RegExp(` ${mnt} .* fuse\\.sshfs `));
    expect(readFileSync(join(mnt, "a.txt"), "utf8")).toBe("from the machine\n");
    writeFileSync(join(mnt, "b.txt"), "from the host\n");
    expect((await ctl(["machine", "ssh", name, `cat ${remote}/b.txt`])).stdout).toBe("from the host\n");

    const unmount = await ctl(["machine", "mount", "-u", `${name}:${remote}`, mnt]);
    expect(unmount.code, unmount.stderr).toBe(0);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${mnt} `);
    expect(readdirSync(mnt)).toEqual([]);
  });

  it("says clearly when sshfs is missing or the mount point is not a directory", async () => {
    // A PATH holding node only (node's own directory may well hold sshfs too: /usr/bin).
    const nodeOnly = join(base, "node-only");
    mkdirSync(nodeOnly);
    symlinkSync(process.execPath, join(nodeOnly, "node"));
    const noSshfs = await ctl(["machine", "mount", `${name}:/tmp`, mnt], { PATH: nodeOnly });
    expect(noSshfs).toMatchObject({
      code: 1,
      stderr:
        "ctl: machine mount needs sshfs, which is not installed: apt-get install sshfs (Debian, Ubuntu), or macFUSE and sshfs on macOS\n",
    });
    const missing = await ctl(["machine", "mount", `${name}:/tmp`, join(base, "nowhere")]);
    expect(missing).toMatchObject({ code: 1, stderr: `ctl: mount point ${join(base, "nowhere")}: no such directory (create it first)\n` });
    const bad = await ctl(["machine", "mount", "/tmp", mnt]);
    expect(bad).toMatchObject({ code: 1, stderr: 'ctl: expected MACHINE:PATH, got "/tmp"\n' });
  });
});

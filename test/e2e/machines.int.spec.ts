// End to end, as a user would: the control plane (API + worker) on a test database,
// `ctl machine create -d netns`, `eval $(ctl machine env)`, and the real docker CLI against the
// agent over mutual TLS, pulling from a real registry; three machines at once, whose agents join
// the control plane (one-time join tokens, through the API's relay on the bridge's gateway).
// Everything stays on loopback and in 198.19.80.0/24 on a bridge this test's machines create.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../../apps/api/test/services-support";
import { startNetnsLab, type NetnsLab } from "./lab";
import { parseExports, removeLeftovers, run } from "./support";
import { testBridge } from "../support/leftovers";

const root = process.getuid?.() === 0;
const haveDocker = (() => {
  try {
    execFileSync("docker", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const tag = process.pid.toString(36);
const BRIDGE = testBridge("fle2");
const GATEWAY = "198.19.80.1";

describe.skipIf(!root || !haveDocker)("machines end to end: ctl + netns + agent + docker CLI", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-machines-"));
  let lab: NetnsLab;
  const regPort = 40000 + (process.pid % 20000);
  const name = `devdays-${tag}`;
  const trio = [1, 2, 3].map((i) => `trio${i}-${tag}`);

  const ctl = (args: string[], extra: Record<string, string | undefined> = {}) => lab.ctl(args, extra, 120_000);

  beforeAll(async () => {
    // Agents reach the API at the bridge's gateway: the API relays from there to its loopback
    // listener, binding as soon as the first machine creates the bridge.
    lab = await startNetnsLab({ base, gateway: GATEWAY, apiPort: regPort + 1, regPort });
  }, 180_000);

  afterAll(async () => {
    await lab?.stop([name, `bad-${tag}`, ...trio]);
    removeLeftovers([name, ...trio]);
    rmSync(base, { recursive: true, force: true });
  });

  it("lists the netns driver's options in create --help", async () => {
    const r = await ctl(["machine", "create", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--netns-cidr CIDR");
    expect(r.stdout).toContain("--engine-insecure-registry");
  });

  it("refuses an unknown driver and bad option values with the API's message", async () => {
    let r = await ctl(["machine", "create", "-d", "vmware", "x"]);
    expect(r).toMatchObject({ code: 1, stderr: 'ctl: unknown driver "vmware"; known drivers: generic, hyperv, netns, qemu, virtualbox\n' });
    r = await ctl(["machine", "create", "-d", "netns", "--netns-cidr", "10.0.0.1/24", "x"]);
    expect(r).toMatchObject({ code: 1, stderr: "ctl: --netns-cidr must lie inside 198.18.0.0/15, got 10.0.0.1/24\n" });
    r = await ctl(["machine", "create", "-d", "netns", "--netns-colour", "red", "x"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option --netns-colour for the netns driver");
  });

  it("creates a machine, points docker at it, runs a container, stops, starts and removes it", { timeout: 240_000 }, async () => {
    const create = await lab.createMachine(name, BRIDGE);
    expect(create.stderr).toContain("upload agent");
    expect(create.code, create.stderr).toBe(0);
    expect(create.stderr).toContain(`Machine ${name} is ready at tcp://198.19.80.`);

    const ls = await ctl(["machine", "ls", "--filter", "driver=netns", "--format", "{{.Name}} {{.State}}"]);
    expect(ls.stdout).toBe(`${name} READY\n`);
    const ip = (await ctl(["machine", "ip", name])).stdout.trim();
    expect(ip).toMatch(/^198\.19\.80\.\d+$/);
    expect((await ctl(["machine", "status", name])).stdout).toBe("Running\n");
    const ssh = await ctl(["machine", "ssh", name, "hostname"]);
    expect(ssh.stdout).toBe(`${name}\n`);

    writeFileSync(join(base, "note.txt"), "from the host\n");
    expect((await ctl(["machine", "scp", join(base, "note.txt"), `${name}:/var/lib/flotilla-agent/note.txt`])).code).toBe(0);
    expect((await ctl(["machine", "ssh", name, "cat", "/var/lib/flotilla-agent/note.txt"])).stdout).toBe("from the host\n");

    const envOut = await ctl(["machine", "env", name]);
    expect(envOut.stdout).toContain(`# eval $(ctl machine env ${name})`);
    const dockerEnv = { ...lab.env, ...parseExports(envOut.stdout) };
    expect(dockerEnv.DOCKER_HOST).toBe(`tcp://${ip}:2376`);
    expect((await ctl(["machine", "active"], dockerEnv)).stdout).toBe(`${name}\n`);

    const version = await run("docker", ["version", "--format", "{{.Server.Version}}"], dockerEnv);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).not.toBe("");

    await lab.forwardRegistry();
    // Pull + create + start + wait over mutual TLS; the container's output read back with logs.
    const image = lab.image;
    const hello = await run("docker", ["run", "--name", "hello", image, "echo", "hello", "world"], dockerEnv);
    expect(hello.code, hello.stderr).toBe(0);
    expect((await run("docker", ["logs", "hello"], dockerEnv)).stdout).toBe("hello world\n");
    expect((await run("docker", ["rm", "hello"], dockerEnv)).code).toBe(0);
    // As in the docker-machine tutorial: `docker run --rm` in the foreground prints the output.
    const foreground = await run("docker", ["run", "--rm", image, "echo", "hello", "world"], dockerEnv);
    expect(foreground, foreground.stderr).toMatchObject({ code: 0, stdout: "hello world\n" });
    // A published port answers at the machine's IP.
    const web = await run("docker", ["run", "-d", "--name", "web", "-p", "8000:80", image, "httpd", "-f", "-p", "80"], dockerEnv);
    expect(web.code, web.stderr).toBe(0);
    // `docker run -d` returns once the process is started, not once it listens (as with dockerd):
    // wait for httpd to bind, then check its answer.
    const res = await until("httpd to answer on 8000", () => fetch(`http://${ip}:8000/`, { signal: AbortSignal.timeout(5_000) }), 15_000);
    expect([200, 404]).toContain(res.status); // busybox httpd without an index page: 404 is its answer
    expect((await run("docker", ["rm", "-f", "web"], dockerEnv)).code).toBe(0);
    // ...and a foreground run's exit status comes back.
    const rmRun = await run("docker", ["run", "--rm", image, "sh", "-c", "exit 3"], dockerEnv);
    expect(rmRun.code).toBe(3);
    expect((await run("docker", ["ps", "-a", "-q"], dockerEnv)).stdout).toBe("");

    // Without the client certificate the agent refuses the docker CLI.
    const noTls = await run("docker", ["version"], { ...dockerEnv, DOCKER_CERT_PATH: join(base, "nowhere") });
    expect(noTls.code).not.toBe(0);

    expect((await ctl(["machine", "stop", name])).code).toBe(0);
    expect((await ctl(["machine", "status", name])).stdout).toBe("Stopped\n");
    expect((await run("docker", ["version"], dockerEnv, 20_000)).code).not.toBe(0);
    expect((await ctl(["machine", "start", name])).code).toBe(0);
    expect((await run("docker", ["version", "--format", "{{.Server.Version}}"], dockerEnv)).code).toBe(0);

    const rmNoConfirm = await ctl(["machine", "rm", name]);
    expect(rmNoConfirm).toMatchObject({ code: 1 });
    expect(rmNoConfirm.stderr).toContain("pass -y");
    const rm = await ctl(["machine", "rm", "-y", name]);
    expect(rm).toMatchObject({ code: 0, stderr: `Successfully removed ${name}\n` });
    expect((await ctl(["machine", "ls", "-q"])).stdout).toBe("");
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(`flt-${name}`);
    expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(BRIDGE);
    expect(execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })).not.toContain(join(base, "data", "machines"));
    expect(existsSync(join(base, "data", "machines", name))).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(join(base, "data"));
  });

  it(
    "runs three machines at once: each agent answers the docker CLI over mTLS and joins as a node; rm of all leaves nothing",
    { timeout: 240_000 },
    async () => {
      const creates = await Promise.all(trio.map((m) => lab.createMachine(m, BRIDGE)));
      for (const c of creates) expect(c.code, c.stderr).toBe(0);
      const ls = await ctl(["machine", "ls", "--format", "{{.Name}} {{.State}}"]);
      expect(ls.stdout).toBe(trio.map((m) => `${m} READY\n`).join(""));

      const envs = await Promise.all(trio.map((m) => lab.dockerEnv(m)));
      expect(new Set(envs.map((e) => e.DOCKER_HOST)).size).toBe(3);
      const answers = await Promise.all(
        envs.map(
          async (e) =>
            [await run("docker", ["version", "--format", "{{.Server.Version}}"], e), await run("docker", ["ps", "-q"], e)] as const,
        ),
      );
      for (const [version, ps] of answers) {
        expect(version.code, version.stderr).toBe(0);
        expect(version.stdout.trim()).not.toBe("");
        expect(ps, ps.stderr).toMatchObject({ code: 0, stdout: "" });
      }
      // Each agent joined with its one-time token (the join is a step of its progress) and reports
      // as a ready node linked to its machine, as `ctl machine inspect` shows.
      for (const m of trio) {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const view = JSON.parse((await ctl(["machine", "inspect", m])).stdout) as {
            agentJoinedAt: string | null;
            node: { hostname: string; status: string } | null;
          };
          if (view.agentJoinedAt && view.node?.status === "ready") {
            expect(view.node.hostname).toBe(m);
            break;
          }
          if (Date.now() > deadline) throw new Error(`the agent of ${m} never joined: ${JSON.stringify(view)}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }

      const rm = await ctl(["machine", "rm", "-y", ...trio]);
      expect(rm.code, rm.stderr).toBe(0);
      expect((await ctl(["machine", "ls", "-q"])).stdout).toBe("");
      const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
      for (const m of trio) expect(namespaces).not.toContain(`flt-${m}`);
      expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(BRIDGE);
      expect(execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })).not.toContain(join(base, "data", "machines"));
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(join(base, "data"));
      for (const m of trio) expect(existsSync(join(base, "data", "machines", m))).toBe(false);
      const tokens = await lab.json<{ name: string }[]>("/api/v1/tokens");
      expect(tokens.map((t) => t.name).filter((n) => n.startsWith("agent-"))).toEqual([]);
    },
  );

  it("reports a create refused by its preCreateCheck with the step and exits 1, keeping nothing", async () => {
    // The generic driver aimed at an address nobody answers on (inside the test range).
    const r = await ctl([
      "machine",
      "create",
      "-d",
      "generic",
      "--generic-ip-address",
      "198.19.81.9",
      "--generic-ssh-key",
      join(base, "missing-key"),
      `bad-${tag}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `ctl: create bad-${tag} failed: preCreateCheck: --generic-ssh-key ${join(base, "missing-key")}: no such file`,
    );
    // As docker-machine: no ERROR row to remove with rm -f, no files.
    expect((await ctl(["machine", "ls", "-q"])).stdout).not.toContain(`bad-${tag}`);
    expect(existsSync(join(base, "data", "machines", `bad-${tag}`))).toBe(false);
  });
});

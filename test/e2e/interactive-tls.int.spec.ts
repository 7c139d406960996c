// Interactive containers over mutual TLS, as a user of a netns machine would drive them: the
// control plane on a test database, `ctl machine create -d netns`, `eval $(ctl machine env)`
// (DOCKER_HOST=tcp://IP:2376, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), then the real docker CLI in
// a real terminal (tmux): run -it, exec -it, cp both ways, top. Everything stays on loopback and
// in one of 198.19.{87,88,89}.0/24 on a bridge this test creates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAS_TMUX, Terminal } from "../../agent/test/support/terminal";
import { freeSubnet24 } from "../support/free-subnet";
import { startNetnsLab, type NetnsLab } from "./lab";
import { removeLeftovers, run } from "./support";
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
const BRIDGE = testBridge("flit");
// A /24 no interface uses yet: a crashed or concurrent run's bridge never clashes with this one.
const SUBNET = freeSubnet24([87, 88, 89]);
const GATEWAY = SUBNET.gateway;
const PROMPT = /# $/m;

describe.skipIf(!root || !haveDocker || !HAS_TMUX)("interactive containers over mTLS on a netns machine", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-e2e-interactive-"));
  let lab: NetnsLab;
  const regPort = 40000 + ((process.pid + 7) % 20000);
  const name = `tty-${tag}`;
  const terminals: Terminal[] = [];

  const ctl = (args: string[]) => lab.ctl(args);

  beforeAll(async () => {
    lab = await startNetnsLab({ base, gateway: GATEWAY, apiPort: regPort + 1, regPort });
  }, 180_000);

  afterAll(async () => {
    for (const t of terminals) t.kill();
    Terminal.killServer();
    await lab?.stop([name]);
    removeLeftovers([name]);
    rmSync(base, { recursive: true, force: true });
  });

  it("run -it, exec -it, cp both ways and top with the docker CLI over mutual TLS", { timeout: 300_000 }, async () => {
    const create = await lab.createMachine(name, BRIDGE);
    expect(create.code, create.stderr).toBe(0);
    const dockerEnv = await lab.dockerEnv(name);
    expect(dockerEnv.DOCKER_HOST).toMatch(new RegExp(`^tcp://${SUBNET.prefix.replaceAll(".", "\\.")}\\.\\d+:2376$`));
    expect(dockerEnv.DOCKER_TLS_VERIFY).toBe("1");
    const docker = (args: string[]) => run("docker", args, dockerEnv);
    const term = (command: string, cols?: number, rows?: number) => {
      const t = Terminal.start(command, dockerEnv, cols, rows);
      terminals.push(t);
      return t;
    };
    await lab.forwardRegistry();
    const image = lab.image;
    expect((await docker(["pull", image])).code).toBe(0);

    // docker run -it: echo, the tty and its size, a resize, the exit code
    const t = term(`docker run -it --name it1 ${image} sh`, 100, 30);
    await t.waitFor(PROMPT);
    t.line("echo typed-$((6*7)); tty; stty size");
    await t.waitFor(/typed-42/);
    await t.waitFor(/^\/dev\/pts\/\d+$/m);
    await t.waitFor(/^30 100$/m);
    t.resize(70, 20);
    // The CLI forwards SIGWINCH as a resize request; asked again until the new size shows.
    const deadline = Date.now() + 15_000;
    while (!/^20 70$/m.test(t.screen())) {
      if (Date.now() > deadline) throw new Error(`the resize never reached the container:\n${t.screen()}`);
      t.line("stty size");
      await new Promise((r) => setTimeout(r, 200));
    }
    t.line("exit 3");
    expect(await t.exitCode()).toBe(3);

    // docker exec -it into a running container
    expect((await docker(["run", "-d", "--name", "ex1", image, "sh", "-c", "sleep 3600 & exec sleep 3601"])).code).toBe(0);
    const x = term("docker exec -it ex1 sh", 90, 25);
    await x.waitFor(PROMPT);
    x.line("echo in-exec-$((2+3)); stty size");
    await x.waitFor(/in-exec-5/);
    await x.waitFor(/^25 90$/m);
    x.line("exit 4");
    expect(await x.exitCode()).toBe(4);

    // docker top
    const top = await docker(["top", "ex1"]);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout).toContain("sleep 3600");
    expect(top.stdout).toContain("sleep 3601");

    // docker cp both ways, running and stopped
    writeFileSync(join(base, "in.txt"), "over mutual TLS\n");
    expect((await docker(["cp", join(base, "in.txt"), "ex1:/tmp/"])).code).toBe(0);
    expect((await docker(["exec", "ex1", "cat", "/tmp/in.txt"])).stdout).toBe("over mutual TLS\n");
    expect((await docker(["cp", "ex1:/etc/passwd", join(base, "passwd.out")])).code).toBe(0);
    expect(readFileSync(join(base, "passwd.out"), "utf8")).toMatch(/^root:x:0:0:/);
    expect((await docker(["stop", "-t", "0", "ex1"])).code).toBe(0);
    const out = await docker(["cp", "ex1:/tmp/in.txt", join(base, "back.txt")]);
    expect(out.code, out.stderr).toBe(0);
    expect(readFileSync(join(base, "back.txt"), "utf8")).toBe("over mutual TLS\n");

    expect((await docker(["rm", "-f", "it1", "ex1"])).code).toBe(0);
    expect((await docker(["ps", "-a", "-q"])).stdout).toBe("");
    const rm = await ctl(["machine", "rm", "-y", name]);
    expect(rm.code, rm.stderr).toBe(0);
  });
});

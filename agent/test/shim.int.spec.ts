// The native shim (agent/shim) against the real kernel: namespaces, cgroups, overlayfs, privilege
// drop, logs, state, signals and cleanup. Needs root, busybox-static and iproute2; every network
// address used lives in 198.18.0.0/15 inside namespaces the test creates.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxRootfs } from "./support/busybox-rootfs";
import {
  boxArgs,
  buildShim,
  cgroupDirs,
  leftovers,
  logText,
  netnsOf,
  newBox,
  pidAlive,
  processesInNetns,
  readLog,
  readState,
  shim,
  SHIM_BIN,
  waitForExit,
  waitForState,
  type Box,
} from "./support/shim";

const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
const DOCKER_DEFAULT_CAPS = "00000000a80425fb";
const isRoot = process.getuid?.() === 0;
const hostIsV2 = fs.existsSync("/sys/fs/cgroup/cgroup.controllers");
const unifiedV2 = !hostIsV2 && fs.existsSync("/sys/fs/cgroup/unified/cgroup.controllers");

let root: string;
let lower: string;
const started: Box[] = [];

function box(name: string): Box {
  const b = newBox(root, name);
  started.push(b);
  return b;
}

/** Runs a container to completion (--foreground) and returns the shim's result and the state. */
function runToExit(b: Box, extra: readonly string[], cmd: readonly string[]) {
  const r = shim(["run", "--foreground", ...boxArgs(b, lower), ...extra, "--", ...cmd]);
  return { ...r, state: fs.existsSync(join(b.stateDir, "state.json")) ? readState(b.stateDir) : undefined };
}

/** Host-side cgroup file of a running container, on v1 or v2. */
function cgroupFile(id: string, v1: [controller: string, file: string], v2: string): string {
  return hostIsV2 ? join("/sys/fs/cgroup/flotilla", id, v2) : join("/sys/fs/cgroup", v1[0], "flotilla", id, v1[1]);
}

describe.skipIf(!isRoot)("flotilla-shim", () => {
  beforeAll(() => {
    buildShim();
    lower = busyboxRootfs();
    root = fs.mkdtempSync(join(tmpdir(), "flotilla-shim-"));
  });

  afterAll(() => {
    // a failed test may leave a container running: stop it before removing its directories
    for (const b of started) {
      if (fs.existsSync(join(b.stateDir, "control"))) shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    }
    const deadline = Date.now() + 5_000;
    while (started.some((b) => fs.existsSync(join(b.stateDir, "control"))) && Date.now() < deadline) execFileSync("sleep", ["0.05"]);
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("writes stdout and stderr to the log as json-file lines, records the exit code, leaves nothing behind", () => {
    const b = box("log");
    const r = runToExit(b, [], ["sh", "-c", 'echo hello; echo oops >&2; printf "no newline"; exit 3']);
    expect(r.stderr).toContain("oops"); // --foreground also passes output through
    expect(r.stdout).toBe("hello\nno newline");
    expect(r.status).toBe(3);

    const records = readLog(b.log);
    expect(records.map(({ log, stream }) => ({ log, stream }))).toEqual([
      { log: "hello\n", stream: "stdout" },
      { log: "oops\n", stream: "stderr" },
      { log: "no newline", stream: "stdout" }, // the partial last line is flushed at exit
    ]);
    for (const rec of records) {
      expect(rec.time).toMatch(RFC3339_NANO);
      expect(Math.abs(Date.parse(rec.time) - Date.now())).toBeLessThan(60_000);
    }
    const s = r.state!;
    expect(s).toMatchObject({ id: b.id, status: "exited", exitCode: 3, oomKilled: false, error: null, cgroup: `flotilla/${b.id}` });
    expect(s.pid).toBeGreaterThan(0);
    expect(s.shimPid).toBeGreaterThan(0);
    expect(Date.parse(s.startedAt!)).toBeLessThanOrEqual(Date.parse(s.finishedAt!));
    expect(leftovers(b)).toEqual([]);
  });

  it("escapes quotes, backslashes, control characters and invalid UTF-8 in log lines", () => {
    const b = box("escape");
    runToExit(b, [], ["sh", "-c", String.raw`printf 'tab\there "q" \\ \001 caf\303\251 \377\n'`]);
    const raw = fs.readFileSync(b.log, "utf8");
    expect(raw).toContain(String.raw`"log":"tab\there \"q\" \\ \u0001 café ` + "\uFFFD" + String.raw`\n"`);
    expect(readLog(b.log)[0]!.log).toBe('tab\there "q" \\ \u0001 café \uFFFD\n');
  });

  it("detached: returns once the command runs (state running), then records the exit", async () => {
    const b = box("detach");
    const t0 = Date.now();
    const r = shim(["run", ...boxArgs(b, lower), "--", "sh", "-c", "read line; echo got:$line:; sleep 2; echo done"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500); // well before the command ends
    const printed = JSON.parse(r.stdout);
    expect(printed).toMatchObject({ id: b.id, status: "running", exitCode: null });
    expect(readState(b.stateDir)).toMatchObject({ status: "running", pid: printed.pid, shimPid: printed.shimPid });
    expect(pidAlive(printed.pid)).toBe(true);

    const s = await waitForExit(b.stateDir);
    expect(s.exitCode).toBe(0);
    expect(JSON.parse(shim(["state", "--state-dir", b.stateDir]).stdout)).toEqual(s);
    expect(logText(b.log)).toBe("got::\ndone\n"); // stdin is /dev/null
    expect(pidAlive(printed.shimPid)).toBe(false);
    expect(leftovers(b)).toEqual([]);
  });

  it("pid namespace: the command is pid 1 and sees only its own processes", () => {
    const b = box("pidns");
    // builtins only until the end, so nothing else runs while /proc is listed
    runToExit(b, [], ["sh", "-c", 'echo "self=$$"; set -- /proc/[0-9]*; echo "pids=$*"; cat /proc/1/comm; true']);
    expect(logText(b.log)).toBe("self=1\npids=/proc/1\nsh\n");
  });

  it("uts namespace: own hostname, the host's is untouched", () => {
    const b = box("uts");
    const before = hostname();
    runToExit(b, ["--hostname", "box1"], ["sh", "-c", 'hostname; echo "$HOSTNAME"']);
    expect(logText(b.log)).toBe("box1\nbox1\n");
    expect(hostname()).toBe(before);
  });

  it("mount namespace: overlay root, proc/sys/dev mounts, no host mounts, nothing visible on the host", async () => {
    const b = box("mnt");
    const r = shim(["run", ...boxArgs(b, lower), "--", "sh", "-c", "cat /proc/mounts; ls /dev; sleep 30"]);
    expect(r.status).toBe(0);
    await waitForState(b.stateDir, () => logText(b.log).includes("zero\n"));
    // the overlay and the container's mounts exist only in its mount namespace
    expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(b.dir);
    shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    await waitForExit(b.stateDir);

    const mounts = logText(b.log);
    expect(mounts).toMatch(/^overlay \/ overlay rw,nodev/m);
    expect(mounts).toMatch(/^proc \/proc proc rw,nosuid,nodev,noexec/m);
    expect(mounts).toMatch(/^sysfs \/sys sysfs ro,/m);
    expect(mounts).toMatch(/^tmpfs \/dev tmpfs rw,nosuid,nodev,noexec/m);
    expect(mounts).toMatch(/^devpts \/dev\/pts devpts .*ptmxmode=666/m);
    expect(mounts).toMatch(/^tmpfs \/dev\/shm tmpfs rw,nosuid,nodev,noexec/m);
    expect(mounts).toMatch(/^mqueue \/dev\/mqueue mqueue/m);
    expect(mounts).toMatch(/^proc \/proc\/sys proc ro,/m); // host-wide knobs are read-only
    // host mounts are gone after pivot_root: every mount point is a container path
    const points = mounts
      .split("\n")
      .filter((l) => / \d+ \d+$/.test(l))
      .map((l) => l.split(" ")[1]!);
    expect(points[0]).toBe("/");
    expect(points.filter((p) => !/^\/(proc|sys|dev)(\/|$)/.test(p) && p !== "/")).toEqual([]);
    expect(points).not.toContain("/sys/fs/cgroup");
    for (const dev of ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"]) {
      expect(mounts).toContain(`${dev}\n`);
    }
    expect(leftovers(b)).toEqual([]);
  });

  it("overlay: writes land in the upper dir, deletions become whiteouts, the lower layer is untouched", () => {
    const b = box("overlay");
    runToExit(b, [], ["sh", "-c", "echo new > /etc/added && rm /etc/group"]);
    expect(fs.readFileSync(join(b.upper, "etc", "added"), "utf8")).toBe("new\n");
    const whiteout = fs.statSync(join(b.upper, "etc", "group"));
    expect(whiteout.isCharacterDevice()).toBe(true);
    expect(fs.existsSync(join(lower, "etc", "group"))).toBe(true);
    expect(fs.existsSync(join(lower, "etc", "added"))).toBe(false);
  });

  it("cgroup: limits are written (swap off), the container is inside, the group goes away after exit", async () => {
    const b = box("limits");
    const limits = ["--memory", "64m", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpu-shares", "512", "--pids", "20"];
    const r = shim(["run", ...boxArgs(b, lower), ...limits, "--", "sleep", "30"]);
    expect(r.status).toBe(0);
    const { pid } = JSON.parse(r.stdout);
    const read = (v1: [string, string], v2: string) => fs.readFileSync(cgroupFile(b.id, v1, v2), "utf8").trim();
    if (hostIsV2) {
      expect(read(["", ""], "memory.max")).toBe(String(64 << 20));
      expect(read(["", ""], "memory.swap.max")).toBe("0");
      expect(read(["", ""], "cpu.max")).toBe("50000 100000");
      expect(read(["", ""], "cpu.weight")).toBe("20");
    } else {
      expect(read(["memory", "memory.limit_in_bytes"], "")).toBe(String(64 << 20));
      expect(read(["memory", "memory.memsw.limit_in_bytes"], "")).toBe(String(64 << 20));
      expect(read(["cpu", "cpu.cfs_quota_us"], "")).toBe("50000");
      expect(read(["cpu", "cpu.cfs_period_us"], "")).toBe("100000");
      expect(read(["cpu", "cpu.shares"], "")).toBe("512");
    }
    expect(read(["pids", "pids.max"], "pids.max")).toBe("20");
    const procCgroup = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
    expect(procCgroup).toContain(hostIsV2 ? `0::/flotilla/${b.id}` : `memory:/flotilla/${b.id}`);
    for (const d of cgroupDirs(b.id)) expect(fs.existsSync(d)).toBe(true);

    expect(shim(["kill", "--state-dir", b.stateDir, "KILL"]).status).toBe(0);
    const s = await waitForExit(b.stateDir);
    expect(s).toMatchObject({ exitCode: 137, oomKilled: false });
    for (const d of cgroupDirs(b.id)) expect(fs.existsSync(d)).toBe(false);
  });

  it("memory limit: an allocating process is OOM-killed (137, oomKilled)", () => {
    const b = box("oom");
    const r = runToExit(b, ["--memory", "32m"], ["sh", "-c", "x=a; while true; do x=$x$x; done"]);
    expect(r.status).toBe(137);
    expect(r.state).toMatchObject({ status: "exited", exitCode: 137, oomKilled: true, error: null });
    expect(leftovers(b)).toEqual([]);
  });

  it("pids limit: forks beyond the limit fail", () => {
    const b = box("pids");
    const script = '(for i in $(seq 30); do sleep 60 & done) 2>/dev/null; echo "sub=$?"; set -- /proc/[0-9]*; echo "count=$#"';
    const r = runToExit(b, ["--pids", "8"], ["sh", "-c", script]);
    expect(r.status).toBe(0);
    const out = logText(b.log);
    expect(out).toMatch(/sub=[1-9]/); // the subshell died on a failed fork
    const count = Number(/count=(\d+)/.exec(out)![1]);
    expect(count).toBeGreaterThan(1);
    expect(count).toBeLessThanOrEqual(8);
  });

  it("capabilities: docker's default set everywhere, none ambient, no_new_privs and seccomp on", () => {
    const b = box("caps");
    runToExit(b, [], ["grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status"]);
    const status = Object.fromEntries(
      logText(b.log)
        .trim()
        .split("\n")
        .map((l) => l.split(/:\s+/)),
    );
    expect(status).toEqual({
      CapInh: DOCKER_DEFAULT_CAPS,
      CapPrm: DOCKER_DEFAULT_CAPS,
      CapEff: DOCKER_DEFAULT_CAPS,
      CapBnd: DOCKER_DEFAULT_CAPS,
      CapAmb: "0000000000000000",
      NoNewPrivs: "1",
      Seccomp: "2",
    });
  });

  it("a dropped capability is refused (EPERM) while the kept ones work; device nodes stay inert", () => {
    const b = box("eperm");
    // seccomp off, so the refusals below come from the capability drop alone
    const script = [
      "mount -t tmpfs none /tmp 2>&1; echo mount=$?",
      "hostname other 2>&1; echo hostname=$?",
      "touch /tmp/f && chown 65534:65534 /tmp/f && stat -c owner=%u:%g /tmp/f", // CAP_CHOWN
      "mknod /tmp/null c 1 3 && echo mknod=ok; cat /tmp/null 2>&1; echo open=$?", // CAP_MKNOD, but nodev
      "ping -c1 -W1 127.0.0.1 >/dev/null && echo ping=ok", // CAP_NET_RAW, lo is up
    ].join("; ");
    runToExit(b, ["--seccomp", "unconfined"], ["sh", "-c", script]);
    const out = logText(b.log);
    expect(out).toContain("mount: permission denied");
    expect(out).toContain("mount=1");
    expect(out).toContain("hostname: sethostname: Operation not permitted");
    expect(out).toContain("owner=65534:65534");
    expect(out).toContain("mknod=ok");
    expect(out).toContain("can't open '/tmp/null': Permission denied");
    expect(out).toContain("ping=ok");
  });

  it("user: uid, gid and supplementary groups switch; a non-root user ends with no capabilities", () => {
    const b = box("user");
    const r = runToExit(b, ["--user", "65534:65534", "--groups", "10,20"], ["sh", "-c", "id -u; id -g; id -G; grep CapEff /proc/self/status; touch /x 2>&1; true"]);
    expect(r.status).toBe(0);
    expect(logText(b.log)).toBe("65534\n65534\n65534 10 20\nCapEff:\t0000000000000000\ntouch: /x: Permission denied\n");
  });

  it("read-only rootfs with tmpfs and bind mounts (rw and ro), mount points created on demand", () => {
    const b = box("mounts");
    const rw = join(b.dir, "vol-rw");
    const ro = join(b.dir, "vol-ro");
    fs.mkdirSync(rw);
    fs.mkdirSync(ro);
    fs.writeFileSync(join(rw, "in.txt"), "from host\n");
    fs.writeFileSync(join(ro, "conf"), "ro data\n");
    const script = [
      "touch /x 2>&1",
      "echo scratch > /scratch/f && cat /scratch/f",
      "grep ' /scratch ' /proc/mounts | grep -o 'size=[0-9a-z]*'",
      "cat /deep/er/data/in.txt && echo written > /deep/er/data/out.txt",
      "cat /etc/conf/conf; touch /etc/conf/y 2>&1",
    ].join("; ");
    const mounts = ["--mount", "tmpfs:/scratch:1m", "--mount", `bind:${rw}:/deep/er/data`, "--mount", `bind:${ro}:/etc/conf:ro`];
    const r = runToExit(b, ["--readonly-rootfs", ...mounts], ["sh", "-c", script]);
    expect(r.status).toBe(1);
    expect(logText(b.log)).toBe(
      "touch: /x: Read-only file system\nscratch\nsize=1024k\nfrom host\nro data\ntouch: /etc/conf/y: Read-only file system\n",
    );
    expect(fs.readFileSync(join(rw, "out.txt"), "utf8")).toBe("written\n");
    expect(fs.readdirSync(ro)).toEqual(["conf"]);
    expect(leftovers(b)).toEqual([]);
  });

  it("env and cwd: later --env wins, PATH defaults, the working directory is created", () => {
    const b = box("env");
    const r = runToExit(b, ["--env", "FOO=bar", "--env", "FOO=baz", "--env", "EMPTY=", "--cwd", "/work/dir"], ["sh", "-c", 'echo "$FOO|$EMPTY|$PATH"; pwd; env | sort']);
    expect(r.status).toBe(0);
    const out = logText(b.log).split("\n");
    expect(out[0]).toBe("baz||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(out[1]).toBe("/work/dir");
    expect(out.slice(2).filter(Boolean)).toEqual(["EMPTY=", "FOO=baz", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PWD=/work/dir", "SHLVL=1"]);
  });

  it("network: a new netns has only lo (up) and dies with the container; host and named netns can be joined", async () => {
    const b = box("netns");
    const r = shim(["run", ...boxArgs(b, lower), "--", "sh", "-c", "ls /sys/class/net; ip -o link show lo; sleep 30"]);
    expect(r.status).toBe(0);
    const { pid } = JSON.parse(r.stdout);
    const ns = netnsOf(pid);
    expect(ns).not.toBe(netnsOf("self"));
    await waitForState(b.stateDir, () => logText(b.log).includes("lo:"));
    shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    await waitForExit(b.stateDir);
    expect(logText(b.log)).toMatch(/^lo\n1: lo: <LOOPBACK,UP,LOWER_UP>/);
    expect(processesInNetns(ns)).toEqual([]);

    const h = box("netns-host");
    runToExit(h, ["--netns", "host"], ["ls", "/sys/class/net"]);
    expect(logText(h.log).split("\n").filter(Boolean)).toEqual(fs.readdirSync("/sys/class/net").sort());

    const name = `flt-shim-${process.pid}`;
    execFileSync("ip", ["netns", "add", name]);
    try {
      execFileSync("ip", ["-n", name, "addr", "add", "198.18.7.1/32", "dev", "lo"]);
      execFileSync("ip", ["-n", name, "link", "set", "lo", "up"]);
      const j = box("netns-join");
      const rr = runToExit(j, ["--netns", `/run/netns/${name}`], ["ip", "-o", "-4", "addr", "show", "dev", "lo"]);
      expect(rr.status).toBe(0);
      expect(logText(j.log)).toContain("inet 198.18.7.1/32");
      expect(fs.existsSync(`/run/netns/${name}`)).toBe(true); // joined, not owned: left alone
    } finally {
      execFileSync("ip", ["netns", "del", name]);
    }
  });

  it("survives its caller being killed; signals reach the container through the shim pid and `kill`", async () => {
    const b = box("survive");
    const script = 'trap "echo got-usr1" USR1; trap "echo got-term; exit 143" TERM; echo ready; while :; do sleep 1 & wait $!; done';
    // the "agent": a shell in its own session that starts the shim, then blocks
    const args = ["run", ...boxArgs(b, lower), "--", "sh", "-c", script].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    const agent = spawn("bash", ["-c", `'${SHIM_BIN}' ${args}; sleep 300`], { detached: true, stdio: "ignore" });
    const running = await waitForState(b.stateDir, (s) => s.status === "running" && logText(b.log).includes("ready"));
    const agentSession = sessionOf(agent.pid!);
    process.kill(-agent.pid!, "SIGKILL"); // the agent's whole process group
    await new Promise((r) => setTimeout(r, 200));
    expect(pidAlive(agent.pid!)).toBe(false);
    expect(pidAlive(running.shimPid)).toBe(true);
    expect(pidAlive(running.pid)).toBe(true);
    expect(sessionOf(running.shimPid)).not.toBe(agentSession);
    expect(readState(b.stateDir).status).toBe("running");

    process.kill(running.shimPid, "SIGUSR1"); // forwarded by the shim
    await waitForState(b.stateDir, () => logText(b.log).includes("got-usr1"));
    expect(shim(["kill", "--state-dir", b.stateDir]).status).toBe(0); // TERM by default
    const s = await waitForExit(b.stateDir);
    expect(s).toMatchObject({ exitCode: 143, oomKilled: false });
    expect(logText(b.log)).toBe("ready\ngot-usr1\ngot-term\n");
    expect(pidAlive(running.shimPid)).toBe(false);
    expect(leftovers(b)).toEqual([]);

    const k = shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    expect(k.status).toBe(1);
    expect(k.stderr).toContain("container is not running");
  });

  it("SIGKILL through `kill --state-dir` ends a command that ignores TERM (137)", async () => {
    const b = box("sigkill");
    const r = shim(["run", ...boxArgs(b, lower), "--", "sleep", "300"]);
    expect(r.status).toBe(0);
    const { pid } = JSON.parse(r.stdout);
    shim(["kill", "--state-dir", b.stateDir, "TERM"]); // pid 1 without a handler: ignored
    await new Promise((res) => setTimeout(res, 200));
    expect(pidAlive(pid)).toBe(true);
    expect(shim(["kill", "--state-dir", b.stateDir, "SIGKILL"]).status).toBe(0);
    expect(await waitForExit(b.stateDir)).toMatchObject({ exitCode: 137, oomKilled: false });
    expect(pidAlive(pid)).toBe(false);
    expect(leftovers(b)).toEqual([]);
  });

  it("refuses a second run on the state dir of a live container, without touching it", async () => {
    const b = box("twice");
    const first = shim(["run", ...boxArgs(b, lower), "--", "sleep", "300"]);
    expect(first.status).toBe(0);
    const before = readState(b.stateDir);
    const second = shim(["run", ...boxArgs(b, lower), "--", "true"]);
    expect(second.status).toBe(125);
    expect(second.stderr).toContain(`state: ${b.stateDir} is in use by another shim`);
    expect(readState(b.stateDir)).toEqual(before);
    expect(shim(["kill", "--state-dir", b.stateDir, "KILL"]).status).toBe(0); // the FIFO still works
    expect(await waitForExit(b.stateDir)).toMatchObject({ pid: before.pid, exitCode: 137 });
    expect(leftovers(b)).toEqual([]);
  });

  it("bad input fails with exit 125 and an error naming the step, leaving nothing behind", () => {
    const missing = box("missing");
    const r1 = shim(["run", "--foreground", "--id", missing.id, "--state-dir", missing.stateDir, "--rootfs", join(root, "nope"), "--", "true"]);
    expect(r1.status).toBe(125);
    expect(r1.stderr).toContain(`rootfs: ${join(root, "nope")}: No such file or directory`);
    expect(readState(missing.stateDir)).toMatchObject({ status: "exited", exitCode: 125, error: expect.stringContaining("rootfs:") });
    expect(leftovers(missing)).toEqual([]);

    const badLayer = box("badlayer");
    const r2 = shim(["run", ...boxArgs(badLayer, `${join(root, "no-layer")}:${lower}`), "--", "true"]); // detached
    expect(r2.status).toBe(125);
    expect(r2.stdout).toBe("");
    expect(r2.stderr).toContain("rootfs: lower layer");
    expect(leftovers(badLayer)).toEqual([]);

    const badMem = box("badmem");
    const r3 = shim(["run", ...boxArgs(badMem, lower), "--memory", "lots", "--", "true"]);
    expect(r3.status).toBe(125);
    expect(r3.stderr).toContain('--memory: invalid size "lots"');
    expect(fs.existsSync(badMem.stateDir)).toBe(false); // refused before anything was made
    expect(leftovers(badMem)).toEqual([]);
  });

  it("a command that cannot be found or executed fails the start with 127 / 126", () => {
    const b = box("enoent");
    const r = shim(["run", ...boxArgs(b, lower), "--", "no-such-command"]);
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('exec: "no-such-command": executable file not found in $PATH');
    expect(readState(b.stateDir)).toMatchObject({ status: "exited", exitCode: 127, pid: 0 });
    expect(leftovers(b)).toEqual([]);

    const c = box("eacces");
    const r2 = runToExit(c, [], ["/etc/passwd"]);
    expect(r2.status).toBe(126);
    expect(r2.stderr).toContain('exec: "/etc/passwd": Permission denied');
    expect(leftovers(c)).toEqual([]);
  });

  it("a cgroup that already exists is refused and left alone", () => {
    const b = box("taken");
    const dirs = cgroupDirs(b.id);
    fs.mkdirSync(dirs[0]!, { recursive: true });
    try {
      const r = shim(["run", ...boxArgs(b, lower), "--", "true"]);
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(/cgroup \w+: mkdir .*: File exists/);
      expect(fs.existsSync(dirs[0]!)).toBe(true);
      for (const d of dirs.slice(1)) expect(fs.existsSync(d)).toBe(false);
    } finally {
      fs.rmdirSync(dirs[0]!);
    }
  });

  it.skipIf(!unifiedV2)("cgroup v2 code path on the unified hierarchy: created, joined (cgroupns), removed; missing controllers refused", () => {
    const b = box("v2");
    const opts = ["--cgroup-root", "/sys/fs/cgroup/unified"];
    const r = runToExit(b, opts, ["sh", "-c", "cat /proc/self/cgroup"]);
    expect(r.status).toBe(0);
    expect(r.state).toMatchObject({ cgroupVersion: 2, cgroup: `flotilla/${b.id}` });
    expect(logText(b.log)).toContain("0::/\n"); // the cgroup namespace is rooted at the container's group
    expect(leftovers(b, { cgroupRoot: "/sys/fs/cgroup/unified" })).toEqual([]);

    const c = box("v2-mem");
    const r2 = shim(["run", ...boxArgs(c, lower), ...opts, "--memory", "64m", "--", "true"]);
    expect(r2.status).toBe(125);
    expect(r2.stderr).toContain("cgroup memory: controller not available in /sys/fs/cgroup/unified/cgroup.controllers");
    expect(leftovers(c, { cgroupRoot: "/sys/fs/cgroup/unified" })).toEqual([]);
  });
});

function sessionOf(pid: number): number {
  // /proc/PID/stat: pid (comm) state ppid pgrp session ...
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

// The native shim (agent/shim) against the real kernel: what a container is kept inside.
// Namespaces (pid, uts, mount, net), the overlay root, cgroup limits, capabilities, seccomp,
// users, mounts and env. Needs root, busybox-static and iproute2; every network address used
// lives in 198.18.0.0/15 inside namespaces the test creates.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { boxArgs, cgroupDirs, leftovers, logText, netnsOf, processesInNetns, shim, waitForExit, waitForState } from "./support/shim";
import { cgroupFile, DOCKER_DEFAULT_CAPS, hostIsV2, isRoot, useShimSuite } from "./support/shim-suite";

describe.skipIf(!isRoot)("flotilla-shim isolation and limits", () => {
  const suite = useShimSuite();
  const { box, runToExit } = suite;

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
    const r = shim(["run", ...boxArgs(b, suite.lower), "--", "sh", "-c", "cat /proc/mounts; ls /dev; sleep 30"]);
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
    expect(fs.existsSync(join(suite.lower, "etc", "group"))).toBe(true);
    expect(fs.existsSync(join(suite.lower, "etc", "added"))).toBe(false);
  });

  it("cgroup: limits are written (swap off), the container is inside, the group goes away after exit", async () => {
    const b = box("limits");
    const limits = ["--memory", "64m", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpu-shares", "512", "--pids", "20"];
    const r = shim(["run", ...boxArgs(b, suite.lower), ...limits, "--", "sleep", "30"]);
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
    const r = runToExit(
      b,
      ["--user", "65534:65534", "--groups", "10,20"],
      ["sh", "-c", "id -u; id -g; id -G; grep CapEff /proc/self/status; touch /x 2>&1; true"],
    );
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
    const r = runToExit(
      b,
      ["--env", "FOO=bar", "--env", "FOO=baz", "--env", "EMPTY=", "--cwd", "/work/dir"],
      ["sh", "-c", 'echo "$FOO|$EMPTY|$PATH"; pwd; env | sort'],
    );
    expect(r.status).toBe(0);
    const out = logText(b.log).split("\n");
    expect(out[0]).toBe("baz||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(out[1]).toBe("/work/dir");
    expect(out.slice(2).filter(Boolean)).toEqual([
      "EMPTY=",
      "FOO=baz",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "PWD=/work/dir",
      "SHLVL=1",
    ]);
  });

  it("network: a new netns has only lo (up) and dies with the container; host and named netns can be joined", async () => {
    const b = box("netns");
    const r = shim(["run", ...boxArgs(b, suite.lower), "--", "sh", "-c", "ls /sys/class/net; ip -o link show lo; sleep 30"]);
    expect(r.status).toBe(0);
    const { pid } = JSON.parse(r.stdout);
    const ns = netnsOf(pid);
    expect(ns).not.toBe(netnsOf("self"));
    await waitForState(b.stateDir, () => logText(b.log).includes("lo:"));
    shim(["kill", "--state-dir", b.stateDir, "KILL"]);
    await waitForExit(b.stateDir);
    expect(logText(b.log)).toMatch(/^lo\n1: lo: <LOOPBACK,UP,LOWER_UP>/);
    expect(processesInNetns(ns)).toEqual([]);

    // Other suites add and remove links in the host netns meanwhile (a CI run once saw one that
    // came and went during the container's run): the container must see every link that was
    // there both before and after its run. A new netns would show lo alone.
    const h = box("netns-host");
    const before = fs.readdirSync("/sys/class/net");
    runToExit(h, ["--netns", "host"], ["ls", "/sys/class/net"]);
    const after = fs.readdirSync("/sys/class/net");
    const seen = logText(h.log).split("\n").filter(Boolean);
    expect(seen).toEqual(expect.arrayContaining(before.filter((link) => after.includes(link))));

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
});

// Finding 7 of issue 11, seccomp: the shim's filter was a deny-list, so every system call it did
// not name (new ones, unknown numbers, socket families Docker refuses) reached the kernel from
// inside a container. Docker's default profile is an allow-list: anything not on it fails with
// EPERM. Here a static probe, run in a container through the real agent and docker CLI, makes
// such calls and prints what the kernel (or the filter) answered.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { docker, dockerOk, HAS_DOCKER_CLI, IS_ROOT, startTestAgent, type TestAgent } from "./docker-helpers";

// Each probe prints NAME=ok or NAME=<errno name>; numbers are raw so the probe needs no new headers.
const PROBE_C = `
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static const char *name(long r) {
  if (r >= 0) return "ok";
  switch (errno) { case EPERM: return "EPERM"; case ENOSYS: return "ENOSYS"; case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EINVAL: return "EINVAL"; case EACCES: return "EACCES"; default: return strerror(errno); }
}
int main(void) {
  printf("unknown-syscall=%s\\n", name(syscall(1000, 0, 0, 0, 0, 0)));
  printf("vsock-socket=%s\\n", name(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)));
  printf("keyctl=%s\\n", name(syscall(SYS_keyctl, 0, 0, 0, 0, 0)));
  printf("userns=%s\\n", name(unshare(CLONE_NEWUSER)));
  printf("getpid=%s\\n", name(getpid()));
  return 0;
}
`;

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("seccomp allow-list (real agent, docker CLI, static probe)", () => {
  let registry: TestRegistry;
  let agent: TestAgent;
  let image: string;
  let dir: string;
  let probe: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync("/tmp/flotilla-s11-seccomp-");
    fs.writeFileSync(join(dir, "probe.c"), PROBE_C);
    fs.mkdirSync(join(dir, "bin"));
    probe = join(dir, "bin", "probe");
    execFileSync("gcc", ["-static", "-O1", "-o", probe, join(dir, "probe.c")]);
    registry = await startRegistry();
    image = await registry.pushBusybox();
    agent = await startTestAgent({ dir: join(dir, "agent"), insecureRegistries: [registry.host] });
    await dockerOk(agent.env, ["pull", image]);
  });

  afterAll(async () => {
    if (agent) {
      for (const c of agent.handle.containers.all()) await agent.handle.containers.remove(c.id, { force: true }).catch(() => {});
      await agent.handle.close();
    }
    await registry?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses what Docker's default profile does not allow with EPERM, unknown numbers and socket families included", async () => {
    const r = await docker(agent.env, ["run", "--rm", "-v", `${join(dir, "bin")}:/probe:ro`, image, "/probe/probe"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("unknown-syscall=EPERM\nvsock-socket=EPERM\nkeyctl=EPERM\nuserns=EPERM\ngetpid=ok\n");
  });
});

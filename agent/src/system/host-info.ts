/**
 * Facts about the host for GET /info and GET /version, read once at start (they do not change
 * while the agent runs): OS name, kernel, CPUs, memory, cgroup version.
 */
import { existsSync, readFileSync } from "node:fs";
import * as os from "node:os";

export interface HostFacts {
  name: string;
  operatingSystem: string;
  kernelVersion: string;
  ncpu: number;
  memTotal: number;
  cgroupVersion: "1" | "2";
  architecture: string;
  goArch: string;
}

const GO_ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
};

export function hostFacts(): HostFacts {
  let operatingSystem = "Linux";
  try {
    const release = readFileSync("/etc/os-release", "utf8");
    operatingSystem = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1] ?? operatingSystem;
  } catch {
    // minimal hosts have no os-release
  }
  return {
    name: os.hostname(),
    operatingSystem,
    kernelVersion: os.release(),
    ncpu: os.availableParallelism(),
    memTotal: os.totalmem(),
    cgroupVersion: existsSync("/sys/fs/cgroup/cgroup.controllers") ? "2" : "1",
    architecture: os.machine(),
    goArch: GO_ARCH[process.arch] ?? process.arch,
  };
}

/**
 * GET /containers/{id}/stats: one sample of a container's cgroup (cgroup v1 or v2: CPU, memory,
 * pids, block I/O) and of the network devices in its namespace, in dockerd's shape, so `docker
 * stats` computes the same percentages. Sampling reads files; the shaping is pure.
 */
import * as fs from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseFlatKeyed, readCgroupFile, readCgroupNumber, type CgroupRef } from "./cgroup-files";

const ZERO_TIME = "0001-01-01T00:00:00Z";
const NS_PER_TICK = 1e9 / 100; // USER_HZ is 100 on every Linux ABI Node runs on

export interface CpuStats {
  cpu_usage: { total_usage: number; usage_in_kernelmode: number; usage_in_usermode: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

export interface NetStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

export interface StatsJson {
  read: string;
  preread: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: { io_service_bytes_recursive: BlkioEntry[] | null; io_serviced_recursive: BlkioEntry[] | null };
  num_procs: number;
  storage_stats: Record<string, never>;
  cpu_stats: CpuStats;
  precpu_stats: CpuStats;
  memory_stats: { usage?: number; max_usage?: number; stats?: Record<string, number>; limit?: number; failcnt?: number };
  name: string;
  id: string;
  networks?: Record<string, NetStats>;
}

const EMPTY_CPU: CpuStats = {
  cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
  throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
};

/** What dockerd sends for a container that is not running. */
export function emptyStats(name: string, id: string): StatsJson {
  return {
    read: ZERO_TIME,
    preread: ZERO_TIME,
    pids_stats: {},
    blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: EMPTY_CPU,
    precpu_stats: EMPTY_CPU,
    memory_stats: {},
    name,
    id,
  };
}

/** /proc/net/dev of the container's namespace → per-interface counters, loopback left out. Pure. */
export function parseNetDev(text: string): Record<string, NetStats> {
  const out: Record<string, NetStats> = {};
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === "lo") continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out[m[1]!] = {
      rx_bytes: f[0]!,
      rx_packets: f[1]!,
      rx_errors: f[2]!,
      rx_dropped: f[3]!,
      tx_bytes: f[8]!,
      tx_packets: f[9]!,
      tx_errors: f[10]!,
      tx_dropped: f[11]!,
    };
  }
  return out;
}

/** v1 blkio.throttle.io_service_bytes ("8:0 Read 4096") and v2 io.stat ("8:0 rbytes=4096 wbytes=0 …"). Pure. */
export function parseBlkio(text: string | null, version: 1 | 2, which: "bytes" | "ios"): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? "").split("\n")) {
    if (version === 1) {
      const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
      if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!.toLowerCase(), value: Number(m[4]) });
    } else {
      const m = /^(\d+):(\d+) (.*)$/.exec(line.trim());
      if (!m) continue;
      const kv = Object.fromEntries(m[3]!.split(" ").map((p) => p.split("=") as [string, string]));
      const [r, w] = which === "bytes" ? ["rbytes", "wbytes"] : ["rios", "wios"];
      out.push(
        { major: Number(m[1]), minor: Number(m[2]), op: "read", value: Number(kv[r] ?? 0) },
        { major: Number(m[1]), minor: Number(m[2]), op: "write", value: Number(kv[w] ?? 0) },
      );
    }
  }
  return out;
}

/** The host's total CPU time in nanoseconds (the first line of /proc/stat), as dockerd reports it. */
export function systemCpuUsage(procStat = fs.readFileSync("/proc/stat", "utf8")): number {
  const fields = procStat.split("\n")[0]!.trim().split(/\s+/).slice(1, 8).map(Number);
  return fields.reduce((a, b) => a + b, 0) * NS_PER_TICK;
}

function cpuStats(cg: CgroupRef): CpuStats {
  if (cg.version === 2) {
    const s = parseFlatKeyed(readCgroupFile(cg, "unified", "cpu.stat"));
    return {
      cpu_usage: {
        total_usage: (s.usage_usec ?? 0) * 1000,
        usage_in_kernelmode: (s.system_usec ?? 0) * 1000,
        usage_in_usermode: (s.user_usec ?? 0) * 1000,
      },
      system_cpu_usage: systemCpuUsage(),
      online_cpus: cpus().length,
      throttling_data: {
        periods: s.nr_periods ?? 0,
        throttled_periods: s.nr_throttled ?? 0,
        throttled_time: (s.throttled_usec ?? 0) * 1000,
      },
    };
  }
  const acct = parseFlatKeyed(readCgroupFile(cg, "cpuacct", "cpuacct.stat"));
  const percpu = (readCgroupFile(cg, "cpuacct", "cpuacct.usage_percpu") ?? "").trim().split(/\s+/).filter(Boolean).map(Number);
  const thr = parseFlatKeyed(readCgroupFile(cg, "cpu", "cpu.stat"));
  return {
    cpu_usage: {
      total_usage: readCgroupNumber(cg, "cpuacct", "cpuacct.usage") ?? 0,
      usage_in_kernelmode: (acct.system ?? 0) * NS_PER_TICK,
      usage_in_usermode: (acct.user ?? 0) * NS_PER_TICK,
      percpu_usage: percpu,
    },
    system_cpu_usage: systemCpuUsage(),
    online_cpus: cpus().length,
    throttling_data: { periods: thr.nr_periods ?? 0, throttled_periods: thr.nr_throttled ?? 0, throttled_time: thr.throttled_time ?? 0 },
  };
}

function memoryStats(cg: CgroupRef): StatsJson["memory_stats"] {
  const host = totalmem();
  const cap = (limit: number | null) => (limit === null || limit > host ? host : limit);
  if (cg.version === 2) {
    return {
      usage: readCgroupNumber(cg, "unified", "memory.current") ?? 0,
      stats: parseFlatKeyed(readCgroupFile(cg, "unified", "memory.stat")),
      limit: cap(readCgroupNumber(cg, "unified", "memory.max")),
    };
  }
  return {
    usage: readCgroupNumber(cg, "memory", "memory.usage_in_bytes") ?? 0,
    max_usage: readCgroupNumber(cg, "memory", "memory.max_usage_in_bytes") ?? 0,
    stats: parseFlatKeyed(readCgroupFile(cg, "memory", "memory.stat")),
    limit: cap(readCgroupNumber(cg, "memory", "memory.limit_in_bytes")),
    failcnt: readCgroupNumber(cg, "memory", "memory.failcnt") ?? 0,
  };
}

/** One sample; `pre` is the previous sample's CPU figures (or empty for the first). */
export function sampleStats(cg: CgroupRef, pid: number, name: string, id: string, pre: { read: string; cpu: CpuStats } | null): StatsJson {
  const ctrl = cg.version === 2 ? "unified" : "pids";
  const pidsLimit = readCgroupNumber(cg, ctrl, "pids.max");
  let networks: Record<string, NetStats> | undefined;
  try {
    networks = parseNetDev(fs.readFileSync(`/proc/${pid}/net/dev`, "utf8"));
  } catch {
    networks = undefined;
  }
  const blk =
    cg.version === 2 ? readCgroupFile(cg, "unified", "io.stat") : readCgroupFile(cg, "blkio", "blkio.throttle.io_service_bytes_recursive");
  const ios = cg.version === 2 ? blk : readCgroupFile(cg, "blkio", "blkio.throttle.io_serviced_recursive");
  return {
    read: new Date().toISOString(),
    preread: pre?.read ?? ZERO_TIME,
    pids_stats: { current: readCgroupNumber(cg, ctrl, "pids.current") ?? 0, ...(pidsLimit !== null ? { limit: pidsLimit } : {}) },
    blkio_stats: {
      io_service_bytes_recursive: parseBlkio(blk, cg.version, "bytes"),
      io_serviced_recursive: parseBlkio(ios, cg.version, "ios"),
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats(cg),
    precpu_stats: pre?.cpu ?? EMPTY_CPU,
    memory_stats: memoryStats(cg),
    name,
    id,
    ...(networks && Object.keys(networks).length ? { networks } : {}),
  };
}

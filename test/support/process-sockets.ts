// Which TCP connections a process holds, read from /proc (Linux): for tests that must act on one
// process's connection among several processes' alike ones, e.g. CLIENT KILL of one API
// process's Redis subscriber when every replica's has the same name.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The local ports of the TCP sockets (IPv4 and IPv6) process `pid` has open. */
export function localTcpPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const ports = new Set<number>();
  for (const table of ["tcp", "tcp6"]) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
    const lines = readFileSync(`/proc/${pid}/net/${table}`, "utf8").trim().split("\n").slice(1);
    for (const line of lines) {
      const cols = line.trim().split(/\s+/);
      if (inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** The client ids in Redis's `CLIENT LIST` output that are `pid`'s connections (by their port). */
export function redisClientIdsOf(pid: number, clientList: string, name?: string): string[] {
  const ports = localTcpPorts(pid);
  return clientList
    .split("\n")
    .filter((l) => l.trim() && (name === undefined || l.includes(` name=${name} `)))
    .filter((l) => ports.has(Number(/\baddr=\S*:(\d+)\b/.exec(l)?.[1])))
    .map((l) => /\bid=(\d+)\b/.exec(l)![1]!);
}

// What provisioning needs to know about a host's operating system: which one it is (the agent
// bundle carries its own Node runtime, so nothing is installed from the OS's packages).

/** Parses /etc/os-release. */
export function parseOsRelease(text: string): { id: string; idLike: string[]; versionId: string; pretty: string } {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  }
  return {
    id: kv.get("ID") ?? "unknown",
    idLike: (kv.get("ID_LIKE") ?? "").split(/\s+/).filter(Boolean),
    versionId: kv.get("VERSION_ID") ?? "",
    pretty: kv.get("PRETTY_NAME") ?? kv.get("ID") ?? "unknown",
  };
}

/** What provisioning learns about a host in one SSH exec (hostProbeScript). */
export interface HostProbe {
  osRelease: string;
  /** The netns driver's marker: the agent's files go under its data dir. */
  netns: boolean;
  /** systemd is PID 1. */
  systemd: boolean;
  /** System V init scripts (/etc/init.d and /etc/rc2.d). */
  initd: boolean;
  /** The recorded sha256 of the host's copy of the bundle's Node runtime, when it has one. */
  runtimeSha256?: string;
}

const PROBE_MARK = "#flotilla-probe";

/**
 * One shell command for everything provisioning asks a host before installing (each SSH exec
 * costs a round trip and, on a VM under TCG, a good part of a second): /etc/os-release, the
 * netns marker, the init system, and the SHA256 file of `runtimeDir` (see bundle.ts).
 */
export function hostProbeScript(netnsMarker: string, runtimeDir?: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    "cat /etc/os-release",
    `echo "${PROBE_MARK}"`,
    `[ -e ${q(netnsMarker)} ] && echo netns`,
    "[ -d /run/systemd/system ] && echo systemd",
    "[ -d /etc/init.d ] && [ -d /etc/rc2.d ] && echo initd",
    ...(runtimeDir ? [`[ -f ${q(`${runtimeDir}/SHA256`)} ] && echo "runtime $(cat ${q(`${runtimeDir}/SHA256`)})"`] : []),
    "true",
  ].join("; ");
}

export function parseHostProbe(out: string): HostProbe {
  const at = out.lastIndexOf(`${PROBE_MARK}\n`);
  if (at < 0) throw new Error("the host's answer to the probe is incomplete");
  const lines = out.slice(at + PROBE_MARK.length + 1).split("\n");
  const sha = lines
    .find((l) => l.startsWith("runtime "))
    ?.slice("runtime ".length)
    .trim();
  return {
    osRelease: out.slice(0, at),
    netns: lines.includes("netns"),
    systemd: lines.includes("systemd"),
    initd: lines.includes("initd"),
    ...(sha && /^[0-9a-f]{64}$/.test(sha) ? { runtimeSha256: sha } : {}),
  };
}

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

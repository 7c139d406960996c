// What provisioning needs to know about a host's operating system: which one it is, and how to
// get Node.js onto it from its own packages.

/** Parses /etc/os-release. */
export function parseOsRelease(text: string): { id: string; idLike: string[]; versionId: string; pretty: string } {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  }
  return { id: kv.get("ID") ?? "unknown", idLike: (kv.get("ID_LIKE") ?? "").split(/\s+/).filter(Boolean), versionId: kv.get("VERSION_ID") ?? "", pretty: kv.get("PRETTY_NAME") ?? kv.get("ID") ?? "unknown" };
}

/**
 * How to install Node.js from the host's OS packages, or null when we do not know how on this OS.
 * The package lists are refreshed first: a fresh image often has none, and then `nodejs` is
 * "unable to locate".
 */
export function nodeInstallCommand(os: { id: string; idLike: string[] }): { summary: string; script: string } | null {
  const family = [os.id, ...os.idLike];
  if (family.includes("debian") || family.includes("ubuntu")) {
    return { summary: "apt-get install -y nodejs", script: "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq nodejs" };
  }
  return null;
}

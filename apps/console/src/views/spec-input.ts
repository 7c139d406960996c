// Reading what people type into service forms: sizes (64m), CPUs (0.5), KEY=value lines and a
// command line. Errors name the field, as the API's do.

export function parseSize(field: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`${field}: use a size such as 64m, 512k or 1g, got ${JSON.stringify(text.trim())}`);
  const power = { "": 0, k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * 1024 ** power);
}

export function parseCpus(field: string, text: string): number {
  const t = text.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) throw new Error(`${field}: use a number of CPUs such as 0.5 or 2, got ${JSON.stringify(t)}`);
  return Math.round(Number(t) * 1e9);
}

export function parseKeyValues(field: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`${field}: expected KEY=value, got ${JSON.stringify(line)}`);
    out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** Splits a command line on spaces; single or double quotes keep words together. */
export function parseArgs(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let inWord = false;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** `key=value,...` fields of one line (a bare word is `word=""`), keys lower-cased. */
function fieldsOf(line: string): [string, string][] {
  return line.split(",").map((part) => {
    const at = part.indexOf("=");
    return at < 0 ? [part.trim().toLowerCase(), ""] : [part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim()];
  });
}

const nonEmptyLines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

/** A mount request as the API takes it (it checks the meaning and names the field). */
export interface MountInput {
  type: "volume" | "bind" | "tmpfs";
  source?: string;
  target: string;
  readOnly?: boolean;
  tmpfsSizeBytes?: number;
}

/** One mount per line, as `--mount` reads: type=volume|bind|tmpfs,source=,target=[,readonly][,tmpfs-size=64m]. */
export function parseMounts(text: string): MountInput[] {
  return nonEmptyLines(text).map((line) => {
    const m: Omit<Partial<MountInput>, "type"> & { type: string } = { type: "volume" };
    for (const [k, v] of fieldsOf(line)) {
      if (k === "type") m.type = v;
      else if (k === "source" || k === "src") m.source = v;
      else if (k === "target" || k === "dst" || k === "destination") m.target = v;
      else if (k === "readonly" || k === "ro") m.readOnly = v === "" || v === "true" || v === "1";
      else if (k === "tmpfs-size") m.tmpfsSizeBytes = parseSize("mounts: tmpfs-size", v);
      else throw new Error(`mounts: unknown option ${JSON.stringify(k)} in ${JSON.stringify(line)}`);
    }
    if (!m.target) throw new Error(`mounts: target is required in ${JSON.stringify(line)}`);
    return m as MountInput;
  });
}

/** A secret or config reference as the API takes it. */
export interface SecretInput {
  source: string;
  target?: string;
  uid?: string;
  gid?: string;
  mode?: number;
}

/** One per line: NAME, or source=NAME[,target=][,uid=][,gid=][,mode=0400] as `--secret` reads. */
export function parseSecretRefs(field: string, text: string): SecretInput[] {
  return nonEmptyLines(text).map((line) => {
    if (!line.includes("=")) return { source: line };
    const r: Partial<SecretInput> = {};
    for (const [k, v] of fieldsOf(line)) {
      if (k === "source" || k === "src") r.source = v;
      else if (k === "target") r.target = v;
      else if (k === "uid") r.uid = v;
      else if (k === "gid") r.gid = v;
      else if (k === "mode") {
        if (!/^[0-7]{1,4}$/.test(v)) throw new Error(`${field}: mode must be octal such as 0400, got ${JSON.stringify(v)}`);
        r.mode = parseInt(v, 8);
      } else throw new Error(`${field}: unknown option ${JSON.stringify(k)} in ${JSON.stringify(line)}`);
    }
    if (!r.source) throw new Error(`${field}: source is required in ${JSON.stringify(line)}`);
    return r as SecretInput;
  });
}

/** Overlay networks, one per line: NAME, or name=NAME,alias=A[,alias=B] as `ctl --network`. */
export function parseNetworks(text: string): { target: string; aliases?: string[] }[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      if (!line.includes("=")) return { target: line };
      let target = "";
      const aliases: string[] = [];
      for (const part of line.split(",")) {
        const [k, v = ""] = [part.slice(0, part.indexOf("=")).trim(), part.slice(part.indexOf("=") + 1).trim()];
        if (k === "name" || k === "target") target = v;
        else if (k === "alias") aliases.push(v);
        else throw new Error(`networks: unknown key ${JSON.stringify(k)} in ${JSON.stringify(line)} (use name=NETWORK,alias=NAME)`);
      }
      if (!target) throw new Error(`networks: name=NETWORK is required in ${JSON.stringify(line)}`);
      return { target, ...(aliases.length ? { aliases } : {}) };
    });
}

// Parsers for the units users type (`--memory 512m`, `--update-delay 1m30s`, `-p 8080:80/udp`).
// The CLI and the API both call these, so a value is understood the same way everywhere and the
// error message is written once. Every failure is an InvalidError naming the field when given.
import { InvalidError } from "./errors";
import { NANO_CPUS_PER_CPU, type PortConfig, type PortProtocol } from "./types";

function invalid(message: string, value: unknown, field?: string): InvalidError {
  return new InvalidError(message, field === undefined ? { value } : { field, value });
}

const MEMORY_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

// Docker's forms: a number, a unit letter, then optionally "b" or "ib" ("64m", "64mb", "64MiB").
const MEMORY_RE = /^(\d+(?:\.\d+)?|\.\d+)\s*([bkmgt]?)(?:i?b)?$/i;

/**
 * Parses a memory size into bytes: a plain number of bytes, or a number with a binary unit
 * (`512k`, `64m`, `1.5g`, `2t`; `mb`/`MiB` spellings accepted). Fractions of a byte round down.
 */
export function parseMemory(input: string | number, field?: string): number {
  if (typeof input === "number") {
    if (Number.isSafeInteger(input) && input >= 0) return input;
    throw invalid(`invalid memory size ${input}: use a whole, non-negative number of bytes`, input, field);
  }
  const m = MEMORY_RE.exec(input.trim());
  if (!m) throw invalid(`invalid memory size ${JSON.stringify(input)}: use a number with b, k, m or g`, input, field);
  const bytes = Math.floor(Number(m[1]) * MEMORY_UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw invalid(`memory size ${JSON.stringify(input)} is too large`, input, field);
  return bytes;
}

/**
 * Parses a number of CPUs (`2`, `0.5`, `.25`) into nano-CPUs. Decimal digits are handled as text
 * so `0.1` is exactly 100_000_000, and more than nine decimals (below one nano-CPU) is refused
 * rather than silently rounded.
 */
export function parseCpus(input: string | number, field?: string): number {
  const text = typeof input === "number" ? String(input) : input.trim();
  const m = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m || (m[1] === "" && (m[2] ?? "") === "")) {
    throw invalid(`invalid CPU count ${JSON.stringify(input)}: use a number of CPUs such as 0.5 or 2`, input, field);
  }
  const fraction = m[2] ?? "";
  if (fraction.length > 9) {
    throw invalid(`CPU count ${JSON.stringify(input)} is too precise: use at most 9 decimals`, input, field);
  }
  const whole = m[1] === "" ? 0 : Number(m[1]);
  const nanos = whole * NANO_CPUS_PER_CPU + Number(fraction.padEnd(9, "0"));
  if (!Number.isSafeInteger(nanos)) throw invalid(`CPU count ${JSON.stringify(input)} is too large`, input, field);
  return nanos;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Parses a Go-style duration (`200ms`, `5s`, `1m30s`, `1.5h`, or `0`) into whole milliseconds.
 * A bare number other than 0 is refused: "5" could mean seconds or milliseconds, and guessing
 * wrong is a 1000× mistake in a restart delay.
 */
export function parseDuration(input: string | number, field?: string): number {
  if (typeof input === "number") {
    if (Number.isFinite(input) && input >= 0) return Math.round(input);
    throw invalid(`invalid duration ${input}: use a non-negative number of milliseconds`, input, field);
  }
  const text = input.trim();
  if (text === "0") return 0;
  const fail = (): InvalidError =>
    invalid(`invalid duration ${JSON.stringify(input)}: use a number with ms, s, m or h (e.g. 1m30s)`, input, field);
  if (text === "") throw fail();
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const at = DURATION_PART.lastIndex;
    const m = DURATION_PART.exec(text);
    if (!m || m.index !== at) throw fail();
    total += Number(m[1]) * DURATION_UNITS[m[2]];
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) throw fail();
  return Math.round(total);
}

/** Checks a TCP/UDP port number (1..65535). */
export function parsePort(input: string | number, field?: string): number {
  const n = typeof input === "number" ? input : /^\d+$/.test(input.trim()) ? Number(input.trim()) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw invalid(`invalid port ${JSON.stringify(input)}: use a number from 1 to 65535`, input, field);
  }
  return n;
}

const PUBLISH_HELP =
  "use published:target[/tcp|udp] (e.g. 8080:80) or published=8080,target=80[,protocol=tcp|udp][,mode=ingress|host][,traffic=cluster|local]";

function parseProtocol(text: string, input: string, field?: string): PortProtocol {
  const protocol = text.toLowerCase();
  if (protocol !== "tcp" && protocol !== "udp") {
    throw invalid(`invalid protocol ${JSON.stringify(text)} in ${JSON.stringify(input)}: use tcp or udp`, input, field);
  }
  return protocol;
}

/** Docker's long syntax: `published=8080,target=80,protocol=tcp,mode=host`, plus `traffic=local` for ingress ports. */
function parsePublishLong(input: string, field?: string): PortConfig {
  const fields = new Map<string, string>();
  for (const part of input.split(",").map((x) => x.trim())) {
    const at = part.indexOf("=");
    const key = at > 0 ? part.slice(0, at).toLowerCase() : "";
    if (!["published", "target", "protocol", "mode", "traffic"].includes(key) || fields.has(key)) {
      throw invalid(
        `invalid published port ${JSON.stringify(input)}: ${JSON.stringify(part)} is not one of published=, target=, protocol=, mode=, traffic= (each once)`,
        input,
        field,
      );
    }
    fields.set(key, part.slice(at + 1));
  }
  if (!fields.has("published") || !fields.has("target")) {
    throw invalid(`invalid published port ${JSON.stringify(input)}: published= and target= are both required`, input, field);
  }
  const mode = (fields.get("mode") ?? "ingress").toLowerCase();
  if (mode !== "ingress" && mode !== "host") {
    throw invalid(
      `invalid publish mode ${JSON.stringify(fields.get("mode"))} in ${JSON.stringify(input)}: use ingress or host`,
      input,
      field,
    );
  }
  const traffic = fields.get("traffic")?.toLowerCase();
  if (traffic !== undefined && traffic !== "cluster" && traffic !== "local") {
    throw invalid(
      `invalid traffic ${JSON.stringify(fields.get("traffic"))} in ${JSON.stringify(input)}: use cluster or local`,
      input,
      field,
    );
  }
  if (traffic !== undefined && mode === "host") {
    throw invalid(
      `invalid published port ${JSON.stringify(input)}: traffic= applies to ingress ports only (a host-mode port is always served by the node's own task)`,
      input,
      field,
    );
  }
  return {
    published: parsePort(fields.get("published")!, field),
    target: parsePort(fields.get("target")!, field),
    protocol: parseProtocol(fields.get("protocol") ?? "tcp", input, field),
    mode,
    ...(traffic === "local" ? { traffic } : {}),
  };
}

/**
 * Parses `-p`/`--publish`: the short syntax `published:target[/tcp|udp]` (`8080:80`) in ingress
 * mode — every node answers on the published port — or the long syntax with `mode=host` to
 * publish on the task's node only (`published=53,target=53,protocol=udp,mode=host`).
 */
export function parsePublish(input: string, field?: string): PortConfig {
  const text = input.trim();
  if (text.includes("=")) return parsePublishLong(text, field);
  if (/^[\d-]+:[\d-]+(\/\w+)?$/.test(text) && text.includes("-")) {
    throw invalid(`invalid published port ${JSON.stringify(input)}: port ranges are not supported`, input, field);
  }
  const m = /^(\d+):(\d+)(?:\/(\w+))?$/.exec(text);
  if (!m) throw invalid(`invalid published port ${JSON.stringify(input)}: ${PUBLISH_HELP}`, input, field);
  return {
    published: parsePort(m[1], field),
    target: parsePort(m[2], field),
    protocol: parseProtocol(m[3] ?? "tcp", input, field),
    mode: "ingress",
  };
}

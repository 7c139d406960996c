/**
 * The Dockerfile parser: directives (`# escape=`), comments, line continuations, then one typed
 * command per instruction with its flags and its exec (JSON) or shell form. Arguments stay
 * unexpanded here; expansion needs the build's variables and happens step by step. Pure.
 */

export class DockerfileParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`dockerfile parse error on line ${line}: ${message}`);
    this.name = "DockerfileParseError";
  }
}

/** A thrown error about one instruction, worded as Docker's builder words it (no line prefix). */
export class InstructionError extends Error {}

interface Base {
  line: number;
  /** The instruction as written, continuations joined: what "Step 2/5 : …" shows. */
  original: string;
  flags: Record<string, string>;
}

/** Exec form (JSON array) or shell form (one string the shell runs). */
export type CommandLine = { json: true; args: string[] } | { json: false; text: string };

export type Command =
  | (Base & { kind: "FROM"; image: string; stage?: string })
  | (Base & { kind: "RUN" | "CMD" | "ENTRYPOINT"; command: CommandLine })
  | (Base & { kind: "SHELL"; args: string[] })
  | (Base & { kind: "COPY" | "ADD"; json: boolean; sources: string[]; dest: string })
  | (Base & { kind: "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER"; value: string })
  | (Base & { kind: "ENV" | "LABEL"; pairs: Array<[string, string]> })
  | (Base & { kind: "ARG"; args: Array<{ name: string; value?: string }> })
  | (Base & { kind: "EXPOSE"; text: string })
  | (Base & { kind: "VOLUME"; json: boolean; paths: string[]; text: string })
  | ((Base & { kind: "HEALTHCHECK"; none: true }) | (Base & { kind: "HEALTHCHECK"; none: false; command: CommandLine }))
  | (Base & { kind: "ONBUILD"; trigger: string });

export interface ParsedDockerfile {
  escape: string;
  commands: Command[];
}

const FLAGS: Record<string, readonly string[]> = {
  FROM: ["platform"],
  COPY: ["from", "chown", "chmod", "link", "parents", "exclude"],
  ADD: ["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"],
  RUN: ["mount", "network", "security"],
  HEALTHCHECK: ["interval", "timeout", "start-period", "start-interval", "retries"],
};

/** Flags we parse but the classic builder here does not do: refused by name, never ignored. */
const UNSUPPORTED_FLAGS = new Set(["platform", "link", "parents", "exclude", "checksum", "keep-git-dir", "mount", "network", "security"]);

const KNOWN = new Set([
  "FROM",
  "RUN",
  "CMD",
  "ENTRYPOINT",
  "SHELL",
  "COPY",
  "ADD",
  "WORKDIR",
  "USER",
  "STOPSIGNAL",
  "MAINTAINER",
  "ENV",
  "LABEL",
  "ARG",
  "EXPOSE",
  "VOLUME",
  "HEALTHCHECK",
  "ONBUILD",
]);

interface LogicalLine {
  line: number;
  text: string;
}

/** Parser directives: `# key=value` lines before anything else (escape and syntax). */
function directives(lines: string[]): { escape: string; first: number } {
  let escape = "\\";
  let i = 0;
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const m = /^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (seen.has(key)) throw new DockerfileParseError(i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === "escape") {
      if (m[2] !== "\\" && m[2] !== "`")
        throw new DockerfileParseError(i + 1, `invalid escape token '${m[2]}' does not match ` + "` or \\");
      escape = m[2]!;
    } else if (key !== "syntax" && key !== "check") break;
  }
  return { escape, first: i };
}

/** Joins continuation lines and drops comments and blank lines. */
function logicalLines(text: string): { escape: string; lines: LogicalLine[] } {
  const raw = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const { escape, first } = directives(raw);
  const out: LogicalLine[] = [];
  let current: LogicalLine | null = null;
  for (let i = first; i < raw.length; i++) {
    const line = raw[i]!;
    const trimmed = line.trim();
    // Comments only at the start of a line, also between continuation lines.
    if (trimmed.startsWith("#")) continue;
    if (current && trimmed === "") continue;
    if (!current && trimmed === "") continue;
    const body = line.replace(/\s+$/, "");
    const continues = body.endsWith(escape) && !body.endsWith(escape + escape);
    const part = continues ? body.slice(0, -1) : body;
    if (current) current.text += part;
    else current = { line: i + 1, text: part.replace(/^\s+/, "") };
    if (!continues) {
      out.push(current);
      current = null;
    }
  }
  if (current && current.text.trim()) out.push(current);
  return { escape, lines: out };
}

/** Splits words on white space, keeping quotes and escapes as written (they matter later). */
export function splitRaw(text: string, escape: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === escape && quote !== "'" && i + 1 < text.length) {
      word += ch + text[++i];
      continue;
    }
    if (quote) {
      if (ch === quote) quote = null;
      word += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      word += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (word) words.push(word);
      word = "";
      continue;
    }
    word += ch;
  }
  if (word) words.push(word);
  return words;
}

/** Leading `--name=value` flags; returns them and the rest of the text. */
function takeFlags(keyword: string, text: string, line: number): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = text;
  for (;;) {
    const m = /^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    const name = m[1]!.toLowerCase();
    const allowed = FLAGS[keyword] ?? [];
    if (!allowed.includes(name)) throw new DockerfileParseError(line, `unknown flag: --${name}`);
    if (UNSUPPORTED_FLAGS.has(name))
      throw new DockerfileParseError(line, `${keyword} --${name} is not supported by this builder (the classic builder)`);
    flags[name] = m[2] ?? "true";
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

/** The exec form when the text is a JSON array of strings; null for the shell form. */
function jsonArray(text: string): string[] | null {
  const t = text.trim();
  if (!t.startsWith("[")) return null;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  } catch {
    // Not JSON: Docker then treats it as the shell form.
  }
  return null;
}

function commandLine(text: string): CommandLine {
  const json = jsonArray(text);
  return json ? { json: true, args: json } : { json: false, text: text.trim() };
}

/** `k=v k2="v 2"` pairs, or the legacy `KEY value with spaces` (one pair). */
function pairs(keyword: string, text: string, escape: string, line: number): Array<[string, string]> {
  const words = splitRaw(text, escape);
  if (words.length === 0) throw new DockerfileParseError(line, `${keyword} requires at least one argument`);
  if (!words[0]!.includes("=")) {
    // Legacy form: the first word is the key and the rest of the line, as written, the value.
    const key = words[0]!;
    const value = text.trim().slice(key.length).trim();
    if (!value && keyword === "ENV") throw new DockerfileParseError(line, "ENV must have two arguments");
    return [[key, value]];
  }
  return words.map((w) => {
    const eq = w.indexOf("=");
    if (eq < 0) throw new DockerfileParseError(line, `Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    if (eq === 0) throw new DockerfileParseError(line, `${keyword} names can not be blank`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function parseLine(l: LogicalLine, escape: string): Command {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(l.text)!;
  const keyword = m[1]!.toUpperCase();
  if (!KNOWN.has(keyword)) throw new DockerfileParseError(l.line, `unknown instruction: ${m[1]}`);
  const { flags, rest } = takeFlags(keyword, m[2]!, l.line);
  const base = { line: l.line, original: l.text.trim(), flags };
  const need = (ok: boolean, message: string) => {
    if (!ok) throw new DockerfileParseError(l.line, message);
  };
  switch (keyword) {
    case "FROM": {
      const words = splitRaw(rest, escape);
      need(words.length === 1 || (words.length === 3 && words[1]!.toUpperCase() === "AS"), "FROM requires either one or three arguments");
      const stage = words[2]?.toLowerCase();
      if (stage !== undefined)
        need(
          /^[a-z][a-z0-9-_.]*$/.test(stage),
          `invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`,
        );
      return { ...base, kind: "FROM", image: words[0]!, ...(stage ? { stage } : {}) };
    }
    case "RUN":
    case "CMD":
    case "ENTRYPOINT":
      need(keyword !== "RUN" || rest.trim() !== "", "RUN requires at least one argument");
      return { ...base, kind: keyword, command: commandLine(rest) };
    case "SHELL": {
      const json = jsonArray(rest);
      need(json !== null && json.length > 0, "SHELL requires the arguments to be in JSON form");
      return { ...base, kind: "SHELL", args: json! };
    }
    case "COPY":
    case "ADD": {
      const json = jsonArray(rest);
      const words = json ?? splitRaw(rest, escape);
      need(
        words.length >= 2,
        `${keyword} requires at least two arguments, but only one was provided. Destination could not be determined.`,
      );
      return { ...base, kind: keyword, json: json !== null, sources: words.slice(0, -1), dest: words[words.length - 1]! };
    }
    case "WORKDIR":
    case "USER":
    case "STOPSIGNAL":
    case "MAINTAINER":
      need(rest.trim() !== "", `${keyword} requires exactly one argument`);
      if (keyword !== "MAINTAINER")
        need(keyword === "WORKDIR" || splitRaw(rest, escape).length === 1, `${keyword} requires exactly one argument`);
      return { ...base, kind: keyword, value: rest.trim() };
    case "ENV":
    case "LABEL":
      return { ...base, kind: keyword, pairs: pairs(keyword, rest, escape, l.line) };
    case "ARG": {
      const words = splitRaw(rest, escape);
      need(words.length > 0, "ARG requires at least one argument");
      return {
        ...base,
        kind: "ARG",
        args: words.map((w) => {
          const eq = w.indexOf("=");
          return eq < 0 ? { name: w } : { name: w.slice(0, eq), value: w.slice(eq + 1) };
        }),
      };
    }
    case "EXPOSE":
      need(rest.trim() !== "", "EXPOSE requires at least one argument");
      return { ...base, kind: "EXPOSE", text: rest };
    case "VOLUME": {
      const json = jsonArray(rest);
      need(rest.trim() !== "", "VOLUME requires at least one argument");
      return { ...base, kind: "VOLUME", json: json !== null, paths: json ?? [], text: rest };
    }
    case "HEALTHCHECK": {
      const words = splitRaw(rest, escape);
      if (words[0]?.toUpperCase() === "NONE") {
        need(words.length === 1 && Object.keys(flags).length === 0, "HEALTHCHECK NONE takes no arguments");
        return { ...base, kind: "HEALTHCHECK", none: true };
      }
      need(words[0]?.toUpperCase() === "CMD", `Unknown type "${words[0] ?? ""}" in HEALTHCHECK (try CMD)`);
      const after = rest.replace(/^\s*\S+\s*/, "");
      need(after.trim() !== "", "Missing command after HEALTHCHECK CMD");
      return { ...base, kind: "HEALTHCHECK", none: false, command: commandLine(after) };
    }
    default: {
      // ONBUILD
      const inner = /^(\S+)/.exec(rest.trim())?.[1]?.toUpperCase();
      need(inner !== undefined, "ONBUILD requires at least one argument");
      need(!["ONBUILD", "FROM", "MAINTAINER"].includes(inner!), `${inner} isn't allowed as an ONBUILD trigger`);
      need(KNOWN.has(inner!), `unknown instruction: ${inner}`);
      return { ...base, kind: "ONBUILD", trigger: rest.trim() };
    }
  }
}

/** Parses a whole Dockerfile. DockerfileParseError names the line of the first problem. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const { escape, lines } = logicalLines(text);
  return { escape, commands: lines.map((l) => parseLine(l, escape)) };
}

/** Parses one instruction (an ONBUILD trigger), with the escape of its Dockerfile. */
export function parseInstruction(text: string, escape = "\\", line = 1): Command {
  return parseLine({ line, text }, escape);
}

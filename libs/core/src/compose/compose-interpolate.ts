// Variable interpolation of the Compose specification, and the `.env`/env_file format. Pure: the
// caller passes the environment and the files' text. Unset variables without a default become ""
// (as compose does); `${VAR:?message}` makes an unset or empty variable an error naming the path.
import { InvalidError } from "../errors";

/** Variables as `NAME=value` lines (`.env`, env_file): `#` comments, blank lines, `export`, quotes. */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=(.*))?$/.exec(line);
    if (!m) throw new InvalidError(`${file} line ${i + 1}: expected NAME=value, got ${JSON.stringify(raw)}`, { field: `${file}:${i + 1}` });
    let value = (m[2] ?? "").trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    out[m[1]] = value;
  });
  return out;
}

const VARIABLE = /\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Interpolates one string; `path` names it in errors (`services.web.image`). */
export function interpolateString(text: string, vars: Readonly<Record<string, string>>, path: string): string {
  return text.replace(VARIABLE, (whole, braced: string | undefined, bare: string | undefined) => {
    if (whole === "$$") return "$";
    if (bare !== undefined) return vars[bare] ?? "";
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$/s.exec(braced ?? "");
    if (!m) throw new InvalidError(`${path}: invalid interpolation format ${JSON.stringify(whole)}`, { field: path });
    const [, name, op, arg = ""] = m;
    const value = vars[name];
    const unset = value === undefined;
    const empty = unset || value === "";
    switch (op) {
      case undefined:
        return value ?? "";
      case ":-":
        return empty ? interpolateString(arg, vars, path) : value!;
      case "-":
        return unset ? interpolateString(arg, vars, path) : value!;
      case ":?":
      case "?":
        if (op === ":?" ? empty : unset) {
          throw new InvalidError(`${path}: required variable ${name} is missing a value${arg ? `: ${arg}` : ""}`, { field: path });
        }
        return value!;
      case ":+":
        return empty ? "" : interpolateString(arg, vars, path);
      case "+":
        return unset ? "" : interpolateString(arg, vars, path);
      default:
        throw new InvalidError(`${path}: invalid interpolation format ${JSON.stringify(whole)}`, { field: path });
    }
  });
}

/** Interpolates every string value (not keys) of a parsed compose document. */
export function interpolate(value: unknown, vars: Readonly<Record<string, string>>, path = ""): unknown {
  if (typeof value === "string") return interpolateString(value, vars, path || "(root)");
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, vars, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, vars, path ? `${path}.${k}` : k)]));
  }
  return value;
}

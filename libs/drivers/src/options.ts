// Self-described driver options and a typed reader that names the flag in every error.
import { homedir } from "node:os";
import { InvalidError } from "@flotilla/core";
import { parseCidr, type Cidr } from "./net";

export type OptionType = "int" | "string" | "bool" | "path" | "cidr" | "enum";
export type OptionValue = string | number | boolean;

/** Raw flag values keyed by option name ("virtualbox-memory"; a leading "--" is tolerated). */
export type RawOptions = Readonly<Record<string, OptionValue | undefined>>;

/** Enough for the CLI to build flags and for the console to build a form, without knowing the driver. */
export interface OptionSpec {
  /** Flag name without dashes: "virtualbox-cpu-count". */
  name: string;
  type: OptionType;
  /** Shown in help; absent when there is no default (or it depends on the host, see `help`). */
  default?: OptionValue;
  help: string;
  required?: boolean;
  /** For "int": the unit shown in help and errors ("MB"). */
  unit?: string;
  /** For "int": inclusive bounds. */
  min?: number;
  max?: number;
  /** For "enum": the accepted values. */
  choices?: readonly string[];
}

const flag = (name: string) => `--${name}`;
const shown = (v: OptionValue) => (typeof v === "string" ? JSON.stringify(v) : String(v));

/**
 * Reads raw values against a driver's specs. Each getter applies the default and validates;
 * `done()` rejects flags nobody asked for, so a typo is an error rather than a silent default.
 */
export class OptionReader {
  private readonly raw = new Map<string, OptionValue>();
  private readonly seen = new Set<string>();
  private readonly specs: Map<string, OptionSpec>;

  constructor(
    private readonly driver: string,
    specs: readonly OptionSpec[],
    raw: RawOptions,
  ) {
    this.specs = new Map(specs.map((s) => [s.name, s]));
    for (const [key, value] of Object.entries(raw)) {
      if (value !== undefined) this.raw.set(key.replace(/^--/, ""), value);
    }
  }

  private take(name: string): { spec: OptionSpec; value: OptionValue | undefined } {
    const spec = this.specs.get(name);
    if (!spec) throw new Error(`driver ${this.driver}: option ${name} is read but not described`);
    this.seen.add(name);
    let value = this.raw.get(name);
    if (typeof value === "string" && value.trim() === "" && spec.type !== "bool") value = undefined;
    if (value === undefined && spec.required) {
      throw new InvalidError(`${flag(name)} is required for the ${this.driver} driver`, { field: name });
    }
    return { spec, value: value ?? spec.default };
  }

  private invalid(name: string, message: string): InvalidError {
    return new InvalidError(`${flag(name)} ${message}`, { field: name });
  }

  int(name: string): number {
    const { spec, value } = this.take(name);
    const unit = spec.unit ? ` ${spec.unit}` : "";
    const what = spec.unit ? `an integer number of ${spec.unit}` : "an integer";
    if (value === undefined) throw new Error(`driver ${this.driver}: int option ${name} needs a default`);
    let n: number;
    if (typeof value === "number") n = value;
    else if (typeof value === "string" && /^\s*[+-]?\d+\s*$/.test(value)) n = Number(value);
    else n = NaN;
    if (!Number.isSafeInteger(n)) throw this.invalid(name, `must be ${what}, got ${shown(value)}`);
    if (spec.min !== undefined && n < spec.min) throw this.invalid(name, `must be at least ${spec.min}${unit}, got ${n}`);
    if (spec.max !== undefined && n > spec.max) throw this.invalid(name, `must be at most ${spec.max}${unit}, got ${n}`);
    return n;
  }

  bool(name: string): boolean {
    const { value } = this.take(name);
    if (value === undefined || typeof value === "boolean") return value ?? false;
    const s = String(value).trim().toLowerCase();
    // A bare flag ("--virtualbox-no-share") arrives as "" from some parsers: it means true.
    if (["", "true", "1", "yes", "on"].includes(s)) return true;
    if (["false", "0", "no", "off"].includes(s)) return false;
    throw this.invalid(name, `must be true or false, got ${shown(value)}`);
  }

  string(name: string): string | undefined {
    const { value } = this.take(name);
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw this.invalid(name, `must be a string, got ${shown(value)}`);
    return value.trim();
  }

  /** A file path; "~/" is expanded so defaults and user input behave like a shell. */
  path(name: string): string | undefined {
    const s = this.string(name);
    if (s === undefined) return undefined;
    if (/[\0\n]/.test(s)) throw this.invalid(name, `must be a file path, got ${shown(s)}`);
    return expandHome(s);
  }

  choice<T extends string>(name: string): T {
    const { spec, value } = this.take(name);
    const choices = spec.choices ?? [];
    if (typeof value !== "string" || !choices.includes(value)) {
      throw this.invalid(name, `must be one of ${choices.join(", ")}, got ${value === undefined ? "nothing" : shown(value)}`);
    }
    return value as T;
  }

  cidr(name: string): Cidr {
    const { value } = this.take(name);
    if (typeof value !== "string")
      throw this.invalid(name, `must be an IPv4 CIDR like 192.168.99.1/24, got ${value === undefined ? "nothing" : shown(value)}`);
    const parsed = parseCidr(value.trim());
    if (typeof parsed === "string") throw this.invalid(name, `${parsed}, got ${shown(value)}`);
    return parsed;
  }

  /** Throws on any raw key that no getter read. Call last. */
  done(): void {
    const unknown = [...this.raw.keys()].filter((k) => !this.seen.has(k));
    if (unknown.length > 0) {
      const known = [...this.specs.keys()].map(flag).join(", ");
      throw new InvalidError(
        `unknown option${unknown.length > 1 ? "s" : ""} ${unknown.map(flag).join(", ")} for the ${this.driver} driver (known: ${known})`,
        { field: unknown[0] },
      );
    }
  }
}

export function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return homedir() + p.slice(1);
  return p;
}

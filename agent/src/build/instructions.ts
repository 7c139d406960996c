/**
 * What each metadata instruction does to an image's run configuration, with Docker's expansion
 * rules, plus the comment each step leaves in the image history (which is also what its cache
 * entry is keyed on). Pure.
 */
import { posix } from "node:path";
import { constants as osConstants } from "node:os";
import type { Command, CommandLine } from "./dockerfile";
import { InstructionError } from "./dockerfile";
import { processWord, processWords, type Lookup } from "./shell-lexer";

/** The image's run configuration as the builder edits it (the config blob's `config`). */
export interface RunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object> | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Healthcheck?: Healthcheck;
  OnBuild?: string[] | null;
  Shell?: string[];
}

export interface Healthcheck {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export const DEFAULT_SHELL: readonly string[] = ["/bin/sh", "-c"];

/** `/bin/sh -c #(nop) ` + comment, Docker's created_by for a step that runs nothing. */
export function nopCreatedBy(config: RunConfig, comment: string): string {
  return [...(config.Shell ?? DEFAULT_SHELL), `#(nop) `, comment].join(" ");
}

/** Exec form as given; shell form wrapped in the current SHELL (`/bin/sh -c TEXT`). */
export function toArgv(command: CommandLine, config: RunConfig): string[] {
  return command.json ? command.args : [...(config.Shell ?? DEFAULT_SHELL), command.text];
}

export function setEnv(env: readonly string[], key: string, value: string): string[] {
  const out = env.filter((e) => e !== key && !e.startsWith(`${key}=`));
  const at = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
  const entry = `${key}=${value}`;
  if (at < 0) return [...out, entry];
  out.splice(at, 0, entry);
  return out;
}

/** `30s`, `1m30s`, `500ms`, `2h` → nanoseconds (Go's time.ParseDuration units). */
export function parseDuration(text: string, flag: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (text === "" || consumed !== text.length)
    throw new InstructionError(`invalid argument "${text}" for "--${flag}" flag: time: invalid duration "${text}"`);
  return Math.round(total);
}

/** EXPOSE words → `80/tcp` keys; ranges expand, as Docker's nat.ParsePortSpecs does. */
export function exposedPorts(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const word of words) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(word);
    if (!m) throw new InstructionError(`Invalid containerPort: ${word}`);
    const from = Number(m[1]);
    const to = m[2] ? Number(m[2]) : from;
    if (from < 1 || to > 65535 || to < from) throw new InstructionError(`Invalid containerPort: ${word}`);
    const proto = (m[3] ?? "tcp").toLowerCase();
    for (let p = from; p <= to; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

/** STOPSIGNAL's value checked as dockerd does: a known name or number. */
export function checkSignal(signal: string): void {
  if (/^\d+$/.test(signal) && Number(signal) >= 1 && Number(signal) <= 64) return;
  const name = signal.toUpperCase().startsWith("SIG") ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  if (!(name in osConstants.signals) && !/^SIGRTM(IN|AX)([+-]\d+)?$/.test(name)) throw new InstructionError(`Invalid signal: ${signal}`);
}

export interface MetadataState {
  /** Whether CMD was set in this stage (ENTRYPOINT clears an inherited CMD only). */
  cmdSet: boolean;
}

export interface MetadataResult {
  config: RunConfig;
  /** The history comment, e.g. `ENV A=1`; created_by is nopCreatedBy(config, comment). */
  comment: string;
  /** MAINTAINER: the image's author. */
  author?: string;
}

/**
 * Applies ENV, LABEL, EXPOSE, USER, WORKDIR, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL, HEALTHCHECK,
 * SHELL, ONBUILD or MAINTAINER to `config` (not changed; a new object comes back).
 */
export function applyMetadata(cmd: Command, config: RunConfig, lookup: Lookup, escape: string, state: MetadataState): MetadataResult {
  const word = (text: string) => processWord(text, lookup, escape);
  const next: RunConfig = structuredClone(config);
  switch (cmd.kind) {
    case "ENV": {
      let env = next.Env ?? [];
      const shown: string[] = [];
      // Each pair sees the ones before it: `ENV A=1 B=$A` gives B=1 only with the new lookup.
      let scope = lookup;
      for (const [rawKey, rawValue] of cmd.pairs) {
        const key = processWord(rawKey, scope, escape);
        const value = processWord(rawValue, scope, escape);
        if (!key) throw new InstructionError("ENV names can not be blank");
        env = setEnv(env, key, value);
        shown.push(`${key}=${value}`);
        const prev = scope;
        scope = (n) => (n === key ? value : prev(n));
      }
      next.Env = env;
      return { config: next, comment: `ENV ${shown.join(" ")}` };
    }
    case "LABEL": {
      const labels = { ...(next.Labels ?? {}) };
      const shown: string[] = [];
      for (const [rawKey, rawValue] of cmd.pairs) {
        const key = word(rawKey);
        const value = word(rawValue);
        if (!key) throw new InstructionError("LABEL names can not be blank");
        labels[key] = value;
        shown.push(`${JSON.stringify(key)}=${JSON.stringify(value)}`);
      }
      next.Labels = labels;
      return { config: next, comment: `LABEL ${shown.join(" ")}` };
    }
    case "EXPOSE": {
      const ports = exposedPorts(processWords(cmd.text, lookup, escape));
      next.ExposedPorts = { ...(next.ExposedPorts ?? {}) };
      for (const p of ports) next.ExposedPorts[p] = {};
      return { config: next, comment: `EXPOSE ${ports.join(" ")}` };
    }
    case "USER":
      next.User = word(cmd.value);
      return { config: next, comment: `USER ${next.User}` };
    case "WORKDIR": {
      const dir = word(cmd.value);
      next.WorkingDir = posix.resolve("/", next.WorkingDir || "/", dir);
      return { config: next, comment: `WORKDIR ${next.WorkingDir}` };
    }
    case "CMD":
      next.Cmd = toArgv(cmd.command, next);
      state.cmdSet = true;
      return { config: next, comment: `CMD ${JSON.stringify(next.Cmd)}` };
    case "ENTRYPOINT":
      next.Entrypoint = cmd.command.json ? cmd.command.args : cmd.command.text === "" ? null : toArgv(cmd.command, next);
      if (!state.cmdSet) next.Cmd = null;
      return { config: next, comment: `ENTRYPOINT ${JSON.stringify(next.Entrypoint)}` };
    case "VOLUME": {
      const paths = cmd.json ? cmd.paths.map(word) : processWords(cmd.text, lookup, escape);
      if (paths.some((p) => p.trim() === "")) throw new InstructionError("VOLUME specified can not be an empty string");
      next.Volumes = { ...(next.Volumes ?? {}) };
      for (const p of paths) next.Volumes[p] = {};
      return { config: next, comment: `VOLUME ${JSON.stringify(paths)}` };
    }
    case "STOPSIGNAL": {
      const signal = word(cmd.value);
      checkSignal(signal);
      next.StopSignal = signal;
      return { config: next, comment: `STOPSIGNAL ${signal}` };
    }
    case "HEALTHCHECK": {
      if (cmd.none) {
        next.Healthcheck = { Test: ["NONE"] };
        return { config: next, comment: `HEALTHCHECK NONE` };
      }
      const hc: Healthcheck = { Test: cmd.command.json ? ["CMD", ...cmd.command.args] : ["CMD-SHELL", cmd.command.text] };
      const durations: Array<[string, keyof Healthcheck]> = [
        ["interval", "Interval"],
        ["timeout", "Timeout"],
        ["start-period", "StartPeriod"],
        ["start-interval", "StartInterval"],
      ];
      for (const [flag, field] of durations) {
        const v = cmd.flags[flag];
        if (v === undefined) continue;
        const ns = parseDuration(v, flag);
        if (ns !== 0 && ns < 1e6)
          throw new InstructionError(
            `${flag === "start-period" ? "Start period" : flag[0]!.toUpperCase() + flag.slice(1)} "${v}" cannot be less than 1ms`,
          );
        (hc as unknown as Record<string, number>)[field] = ns;
      }
      if (cmd.flags.retries !== undefined) {
        const n = Number(cmd.flags.retries);
        if (!Number.isInteger(n) || n < 0) throw new InstructionError(`invalid argument "${cmd.flags.retries}" for "--retries" flag`);
        hc.Retries = n;
      }
      next.Healthcheck = hc;
      return { config: next, comment: `HEALTHCHECK &{${JSON.stringify(hc.Test)} ${JSON.stringify(hc)}}` };
    }
    case "SHELL":
      next.Shell = cmd.args;
      return { config: next, comment: `SHELL ${JSON.stringify(cmd.args)}` };
    case "ONBUILD":
      next.OnBuild = [...(next.OnBuild ?? []), cmd.trigger];
      return { config: next, comment: `ONBUILD ${cmd.trigger}` };
    case "MAINTAINER": {
      const author = word(cmd.value);
      return { config: next, comment: `MAINTAINER ${author}`, author };
    }
    default:
      throw new InstructionError(`${cmd.kind} is not a metadata instruction`);
  }
}

/** Build arguments every build knows without an ARG line (proxies), as Docker lists them. */
export const BUILTIN_ARGS: ReadonlySet<string> = new Set([
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "FTP_PROXY",
  "ftp_proxy",
  "NO_PROXY",
  "no_proxy",
  "ALL_PROXY",
  "all_proxy",
]);

/**
 * The `|N K=V … ` prefix Docker puts before a RUN's command in history and in its cache key:
 * the build arguments in scope (declared ones, plus given built-in ones), sorted.
 */
export function runArgsPrefix(args: ReadonlyMap<string, string>): string {
  if (args.size === 0) return "";
  const pairs = [...args].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
  return `|${pairs.length} ${pairs.join(" ")} `;
}

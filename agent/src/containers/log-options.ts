/**
 * json-file log options (--log-opt): max-size and max-file, as Docker's json-file driver takes
 * them. Unlike Docker's unbounded default, a container's log is capped unless asked otherwise:
 * DEFAULT_LOG_MAX_SIZE × DEFAULT_LOG_MAX_FILES, so one chatty container cannot fill the disk.
 */
import { InvalidError, NotSupportedError } from "@flotilla/core";

export const DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024;
export const DEFAULT_LOG_MAX_FILES = 3;
const MAX_FILES_LIMIT = 100;

export interface LogLimits {
  maxSize: number;
  maxFiles: number;
}

/** Docker's units: 123, 10k, 10m, 1g (also kb/mb/gb; binary multiples). */
function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(value.trim());
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"];
  const n = m ? Math.floor(Number(m[1]) * mult) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidError(`invalid --log-opt max-size=${value}: a size such as 10m is expected`, { field: "LogConfig" });
  return n;
}

/** Validates LogConfig.Config; the limits the shim is given. */
export function logLimits(config: Readonly<Record<string, string>> | null | undefined): LogLimits {
  const opts = config ?? {};
  for (const key of Object.keys(opts)) {
    if (key !== "max-size" && key !== "max-file")
      throw new NotSupportedError(`--log-opt ${key} is not supported by this agent (only max-size and max-file)`, { field: "LogConfig" });
  }
  const maxSize = opts["max-size"] !== undefined ? (opts["max-size"] === "-1" ? 0 : parseSize(opts["max-size"])) : DEFAULT_LOG_MAX_SIZE;
  let maxFiles = DEFAULT_LOG_MAX_FILES;
  if (opts["max-file"] !== undefined) {
    maxFiles = /^\d+$/.test(opts["max-file"]) ? Number(opts["max-file"]) : NaN;
    if (!(maxFiles >= 1 && maxFiles <= MAX_FILES_LIMIT))
      throw new InvalidError(`invalid --log-opt max-file=${opts["max-file"]}: 1 to ${MAX_FILES_LIMIT}`, { field: "LogConfig" });
    if (opts["max-size"] === undefined || maxSize === 0)
      throw new InvalidError("--log-opt max-file needs max-size", { field: "LogConfig" });
  }
  return { maxSize, maxFiles };
}

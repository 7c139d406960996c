// A compose service's `healthcheck:` as the spec's: `test` as a string runs with the image's
// shell (CMD-SHELL), as a list keeps its CMD / CMD-SHELL / NONE form; `disable: true` is NONE;
// durations as compose writes them (`10s`, `1m30s`). The schema has checked the types.
import { InvalidError, NotSupportedError } from "../errors";
import { parseDuration } from "../parsers";
import type { HealthCheck } from "../types";

export function healthcheckOf(raw: unknown, at: string): Partial<HealthCheck> {
  const h = (raw ?? {}) as Record<string, unknown>;
  if (h.start_interval !== undefined) {
    throw new NotSupportedError(`${at}.start_interval: not supported: the check runs every interval from the start`, {
      field: `${at}.start_interval`,
    });
  }
  if (h.disable === true) {
    const others = Object.keys(h).filter((k) => k !== "disable");
    if (others.length) throw new InvalidError(`${at}: disable: true takes no ${others.join(", ")}`, { field: at });
    return { test: ["NONE"] };
  }
  const test = h.test === undefined ? undefined : typeof h.test === "string" ? ["CMD-SHELL", h.test] : (h.test as string[]).map(String);
  const duration = (k: string) => (h[k] === undefined ? undefined : parseDuration(String(h[k]), `${at}.${k}`));
  const interval = duration("interval");
  const timeout = duration("timeout");
  const start = duration("start_period");
  return {
    ...(test ? { test } : {}),
    ...(interval !== undefined ? { intervalMs: interval } : {}),
    ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
    ...(start !== undefined ? { startPeriodMs: start } : {}),
    ...(h.retries !== undefined ? { retries: Number(h.retries) } : {}),
  };
}

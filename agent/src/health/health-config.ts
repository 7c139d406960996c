/**
 * A container's HEALTHCHECK: the image's, overridden field by field by the create request's
 * (`--health-cmd/--health-interval/--health-timeout/--health-retries/--health-start-period`,
 * `--no-healthcheck` as Test ["NONE"]), validated with dockerd's messages, and the probe command
 * it runs. Pure.
 */
import { InvalidError } from "@flotilla/core";

/** Docker's HealthConfig (durations in nanoseconds; 0 = inherit or default). */
export interface HealthConfig {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, retries: 3 } as const;
const MIN_DURATION_NS = 1_000_000;

function duration(v: unknown, name: string): number {
  if (v === undefined || v === null || v === 0) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
    throw new InvalidError(`${name} in Healthcheck cannot be negative`, { field: "Healthcheck" });
  if (v < MIN_DURATION_NS) throw new InvalidError(`${name} in Healthcheck cannot be less than 1ms`, { field: "Healthcheck" });
  return v;
}

/** The effective health check, or null when there is none (or it is disabled with NONE). */
export function mergeHealthcheck(request: unknown, image: unknown): HealthConfig | null {
  const req = (request ?? null) as HealthConfig | null;
  const img = (image ?? null) as HealthConfig | null;
  if (req && typeof req !== "object") throw new InvalidError("invalid Healthcheck", { field: "Healthcheck" });
  const test = req?.Test?.length ? req.Test : img?.Test;
  if (!test?.length) return null;
  if (test[0] === "NONE") return { Test: ["NONE"] };
  if (!Array.isArray(test) || test.some((t) => typeof t !== "string"))
    throw new InvalidError("Healthcheck.Test must be a list of strings", { field: "Healthcheck" });
  if (!["CMD", "CMD-SHELL"].includes(test[0]!)) throw new InvalidError(`unknown Healthcheck type '${test[0]}'`, { field: "Healthcheck" });
  if (test.length < 2) throw new InvalidError("Healthcheck has no command", { field: "Healthcheck" });
  const retries = req?.Retries || img?.Retries || 0;
  if (!Number.isInteger(retries) || retries < 0)
    throw new InvalidError("Retries in Healthcheck cannot be negative", { field: "Healthcheck" });
  return {
    Test: test,
    Interval: duration(req?.Interval, "Interval") || duration(img?.Interval, "Interval"),
    Timeout: duration(req?.Timeout, "Timeout") || duration(img?.Timeout, "Timeout"),
    StartPeriod: duration(req?.StartPeriod, "StartPeriod") || duration(img?.StartPeriod, "StartPeriod"),
    Retries: retries,
  };
}

export interface HealthPlan {
  cmd: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  retries: number;
}

/** What the monitor runs, with defaults; null when disabled. */
export function healthPlan(h: HealthConfig | null | undefined): HealthPlan | null {
  const test = h?.Test;
  if (!test?.length || test[0] === "NONE") return null;
  return {
    cmd: test[0] === "CMD-SHELL" ? ["/bin/sh", "-c", test.slice(1).join(" ")] : test.slice(1),
    intervalMs: h!.Interval ? h!.Interval / 1e6 : HEALTH_DEFAULTS.intervalMs,
    timeoutMs: h!.Timeout ? h!.Timeout / 1e6 : HEALTH_DEFAULTS.timeoutMs,
    startPeriodMs: h!.StartPeriod ? h!.StartPeriod / 1e6 : HEALTH_DEFAULTS.startPeriodMs,
    retries: h!.Retries || HEALTH_DEFAULTS.retries,
  };
}

export interface ProbeResult {
  exitCode: number;
  output: string;
  start: string;
  end: string;
}

const MAX_LOG = 5;
const MAX_OUTPUT = 4096;

/**
 * Folds one probe into the state (dockerd's rules): success → healthy; a failure counts toward
 * the retries, except while the start period lasts (then the status stays "starting"); after
 * `retries` failures in a row → unhealthy.
 */
export function applyProbe(prev: HealthState, r: ProbeResult, plan: HealthPlan, inStartPeriod: boolean): HealthState {
  const Log = [...prev.Log, { Start: r.start, End: r.end, ExitCode: r.exitCode, Output: r.output.slice(0, MAX_OUTPUT) }].slice(-MAX_LOG);
  if (r.exitCode === 0) return { Status: "healthy", FailingStreak: 0, Log };
  if (inStartPeriod && prev.Status === "starting") return { ...prev, Log };
  const FailingStreak = prev.FailingStreak + 1;
  return { Status: FailingStreak >= plan.retries ? "unhealthy" : prev.Status, FailingStreak, Log };
}

/** State.Health of inspect. */
export interface HealthState {
  Status: "starting" | "healthy" | "unhealthy";
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

// Health checks of a service's tasks: the rules users meet (`--health-*` flags, the REST body),
// written once for the API and ctl. The agent runs the check (docker's rules: agent/src/health);
// what a reported health status means for a task is `observedTaskState` in task-state.ts.
import { InvalidError } from "./errors";
import type { HealthCheck } from "./types";

/** The image's health check, untouched. */
export const DEFAULT_HEALTHCHECK: HealthCheck = { test: [], intervalMs: 0, timeoutMs: 0, startPeriodMs: 0, retries: 0 };

function fail(field: string, message: string, value?: unknown): never {
  throw new InvalidError(message, value === undefined ? { field } : { field, value });
}

/** Checks a health check's shape and ranges; InvalidError naming the field otherwise. */
export function validateHealthcheck(h: unknown): HealthCheck {
  if (typeof h !== "object" || h === null || Array.isArray(h)) fail("healthcheck", "healthcheck must be an object");
  const hc = h as HealthCheck;
  const test: unknown = hc.test;
  if (!Array.isArray(test) || test.some((t) => typeof t !== "string"))
    fail("healthcheck.test", "healthcheck.test must be a list of strings");
  if (test.length > 0) {
    const [kind, ...rest] = test as string[];
    if (kind === "NONE") {
      if (rest.length > 0) fail("healthcheck.test", `healthcheck.test ["NONE"] takes nothing after NONE`, test);
    } else if (kind === "CMD") {
      if (rest.length === 0 || rest[0] === "") fail("healthcheck.test", 'healthcheck.test ["CMD", ...] needs a program to run', test);
    } else if (kind === "CMD-SHELL") {
      if (rest.length !== 1 || rest[0].trim() === "") {
        fail("healthcheck.test", 'healthcheck.test ["CMD-SHELL", command] takes exactly one non-empty command', test);
      }
    } else {
      fail("healthcheck.test", `healthcheck.test must start with NONE, CMD or CMD-SHELL (got ${JSON.stringify(kind)})`, test);
    }
  }
  for (const [k, what] of [
    ["intervalMs", "health check interval"],
    ["timeoutMs", "health check timeout"],
    ["startPeriodMs", "health check start period"],
    ["retries", "health check retries"],
  ] as const) {
    const v = hc[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      fail(`healthcheck.${k}`, `${what} must be a whole number ≥ 0 (0: the image's) (got ${JSON.stringify(v)})`, v);
    }
  }
  if (test[0] === "NONE" && (hc.intervalMs || hc.timeoutMs || hc.startPeriodMs || hc.retries)) {
    fail("healthcheck", "a disabled health check (--no-healthcheck) takes no interval, timeout, start period or retries");
  }
  return hc;
}

/** `--health-cmd` as docker takes it: a command for the image's shell. */
export function shellHealthTest(command: string): string[] {
  return ["CMD-SHELL", command];
}

/** For people: "CMD-SHELL wget -q -O- localhost/health, every 5s", "none", "the image's". */
export function describeHealthcheck(h: HealthCheck): string {
  if (h.test[0] === "NONE") return "none";
  const what = h.test.length === 0 ? "the image's" : h.test.join(" ");
  const parts = [
    h.intervalMs ? `every ${h.intervalMs / 1000}s` : "",
    h.timeoutMs ? `timeout ${h.timeoutMs / 1000}s` : "",
    h.startPeriodMs ? `start period ${h.startPeriodMs / 1000}s` : "",
    h.retries ? `${h.retries} retries` : "",
  ].filter(Boolean);
  return parts.length ? `${what}, ${parts.join(", ")}` : what;
}

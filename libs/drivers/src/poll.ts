// Abortable waiting: every poll loop in the drivers goes through here.
import { UnavailableError } from "@flotilla/core";
import { formatDuration } from "./net";

/** Resolves after `ms`; rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface PollOptions {
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Names the wait in the timeout error: "virtualbox devdays: waiting for an IP". */
  what: string;
  /** Appended to the timeout error, e.g. the last state seen or what to do next. */
  hint?: () => string;
}

/**
 * Calls `probe` until it returns a value other than undefined. Errors from `probe` end the wait.
 * Throws UnavailableError after `timeoutMs`, or the signal's reason when it aborts (also mid-probe).
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const { intervalMs, timeoutMs, signal } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const value = await probe();
    if (value !== undefined) return value;
    signal?.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) {
      const hint = options.hint?.();
      throw new UnavailableError(`${options.what}: timed out after ${formatDuration(timeoutMs)}${hint ? ` (${hint})` : ""}`, {
        reason: "timeout",
      });
    }
    await sleep(Math.min(intervalMs, left), signal);
  }
}

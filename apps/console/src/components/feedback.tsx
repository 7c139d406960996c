// How actions report back: a busy flag while the request runs, and the API's message next to
// the control that caused it.
import { useCallback, useState } from "react";
import { messageOf } from "../data/client";

export function ErrorNote({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  return (
    <p className="error" role="alert" id={id}>
      {messageOf(error)}
    </p>
  );
}

export interface Action {
  busy: boolean;
  error: unknown;
  run(fn: () => Promise<unknown>): Promise<boolean>;
  clear(): void;
}

/** Runs one user action at a time and keeps its error for display; resolves true on success. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => setError(undefined), []);
  return { busy, error, run, clear };
}

export function Badge({ value, tone }: { value: string; tone?: "ok" | "warn" | "bad" | "busy" | "idle" }) {
  return <span className={`badge badge-${tone ?? toneOf(value)}`}>{value.toLowerCase()}</span>;
}

const TONES: Record<string, "ok" | "warn" | "bad" | "busy" | "idle"> = {
  ready: "ok",
  running: "ok",
  active: "ok",
  complete: "idle",
  shutdown: "idle",
  stopped: "idle",
  pause: "warn",
  drain: "warn",
  unknown: "warn",
  pending: "warn",
  unreachable: "bad",
  down: "bad",
  error: "bad",
  failed: "bad",
  rejected: "bad",
  orphaned: "bad",
};

function toneOf(value: string): "ok" | "warn" | "bad" | "busy" | "idle" {
  return TONES[value.toLowerCase()] ?? "busy";
}

/** A labelled bar: "reserved 0.5 of 4 CPU". */
export function Meter({ label, value, max, text }: { label: string; value: number; max: number; text: string }) {
  return (
    <div className="meter">
      <span className="meter-label">{label}</span>
      <meter min={0} max={max || 1} value={Math.min(value, max || 1)} aria-label={`${label}: ${text}`} />
      <span className="meter-text">{text}</span>
    </div>
  );
}

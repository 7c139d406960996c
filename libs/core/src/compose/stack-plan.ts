// What a `stack deploy` changes: services to create, to update (only those whose spec differs)
// and, with prune, to remove. Pure; the API applies the plan through its services module.
import type { ServiceSpec } from "../types";

/** The changes of one deploy, by service name. */
export interface StackPlan {
  create: ServiceSpec[];
  update: ServiceSpec[];
  unchanged: string[];
  /** Services of the stack the file no longer has (removed only with prune). */
  remove: string[];
}

// Key order must not make two equal specs differ (JSON columns do not keep it).
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** Whether two specs are the same desired state. */
export function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** Compares the stack's services now (`current`) with the file's (`desired`). */
export function planStackDeploy(
  current: readonly ServiceSpec[],
  desired: readonly ServiceSpec[],
  opts: { prune?: boolean } = {},
): StackPlan {
  const byName = new Map(current.map((s) => [s.name, s]));
  const plan: StackPlan = { create: [], update: [], unchanged: [], remove: [] };
  for (const d of desired) {
    const now = byName.get(d.name);
    if (!now) plan.create.push(d);
    else if (sameSpec(now, d)) plan.unchanged.push(d.name);
    else plan.update.push(d);
  }
  const wanted = new Set(desired.map((d) => d.name));
  if (opts.prune) plan.remove = current.filter((s) => !wanted.has(s.name)).map((s) => s.name);
  return plan;
}

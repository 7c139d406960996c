// Display helpers: units as ctl prints them, stable service colours, relative times.
import {
  ACTIVE_TASK_STATES,
  type HealthCheck,
  type PortConfig,
  type ServiceView,
  type TaskState,
  type TaskView,
} from "@flotilla/api-types";

const NANO = 1e9;

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export const cpus = (nanoCpus: number): string => `${Number((nanoCpus / NANO).toFixed(2))} CPU`;

export const port = (p: PortConfig): string =>
  `${p.published}:${p.target}/${p.protocol}${p.mode === "host" ? " (host)" : p.traffic === "local" ? " (local traffic)" : ""}`;

export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** States in which a task holds, or is about to hold, a container. */
export const ACTIVE: ReadonlySet<TaskState> = new Set(ACTIVE_TASK_STATES);
export const isLive = (t: TaskView): boolean => t.desiredState === "running" && ACTIVE.has(t.state);

/** A hue per service name, the same on every page and every reload. */
export function hueOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  // Golden-angle steps spread neighbouring hashes around the wheel.
  return Math.round(((h >>> 0) % 360) * 137.508) % 360;
}

/** CPU and memory reserved by live tasks (their service's reservations), per node id and in total. */
export function reserved(
  tasks: readonly TaskView[],
  services: readonly ServiceView[],
): { byNode: Map<string, { nanoCpus: number; memoryBytes: number }>; total: { nanoCpus: number; memoryBytes: number } } {
  const spec = new Map(services.map((s) => [s.id, s.spec.resources.reservations]));
  const byNode = new Map<string, { nanoCpus: number; memoryBytes: number }>();
  const total = { nanoCpus: 0, memoryBytes: 0 };
  for (const t of tasks) {
    if (!isLive(t) || !t.nodeId) continue;
    const r = spec.get(t.serviceId);
    if (!r) continue;
    const n = byNode.get(t.nodeId) ?? { nanoCpus: 0, memoryBytes: 0 };
    n.nanoCpus += r.nanoCpus;
    n.memoryBytes += r.memoryBytes;
    byNode.set(t.nodeId, n);
    total.nanoCpus += r.nanoCpus;
    total.memoryBytes += r.memoryBytes;
  }
  return { byNode, total };
}

export const percent = (part: number, whole: number): number => (whole > 0 ? Math.min(100, Math.round((part / whole) * 100)) : 0);

/** A secret or config reference: `db_pass → /run/secrets/db_pass 0400 1000:1000`. */
export function fileRef(r: { source: string; target: string; uid: string; gid: string; mode: number }): string {
  return `${r.source} → ${r.target} ${r.mode.toString(8).padStart(4, "0")} ${r.uid}:${r.gid}`;
}

/** A mount as `--mount` reads: `volume pgdata:/data (ro)`, `tmpfs /cache (1.0 MiB)`. */
export function mount(m: { type: string; source?: string; target: string; readOnly: boolean; tmpfsSizeBytes?: number }): string {
  const where = m.type === "tmpfs" ? m.target : `${m.source ?? ""}:${m.target}`;
  const size = m.tmpfsSizeBytes ? ` (${(m.tmpfsSizeBytes / 1024 ** 2).toFixed(1)} MiB)` : "";
  return `${m.type} ${where}${m.readOnly ? " (ro)" : ""}${size}`;
}

/** A service's health check for people: "CMD-SHELL wget …, every 5s", "none", "the image's". */
export function healthcheck(h: HealthCheck | undefined): string {
  if (!h || (h.test.length === 0 && !h.intervalMs && !h.timeoutMs && !h.startPeriodMs && !h.retries)) return "the image's";
  if (h.test[0] === "NONE") return "none";
  const parts = [
    h.intervalMs ? `every ${h.intervalMs / 1000}s` : "",
    h.timeoutMs ? `timeout ${h.timeoutMs / 1000}s` : "",
    h.startPeriodMs ? `start period ${h.startPeriodMs / 1000}s` : "",
    h.retries ? `${h.retries} retries` : "",
  ].filter(Boolean);
  return [h.test.length ? h.test.join(" ") : "the image's", ...parts].join(", ");
}

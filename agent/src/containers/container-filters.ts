/**
 * GET /containers/json: which containers to list (all, limit, filters) in Docker's semantics —
 * values of one filter key OR-ed, keys AND-ed. Pure.
 */
import { InvalidError } from "@flotilla/core";
import { labelMatches } from "../labels";
import type { ContainerRecord, ContainerStatus } from "./container-types";

export const CONTAINER_FILTER_KEYS = [
  "id",
  "name",
  "label",
  "status",
  "ancestor",
  "exited",
  "network",
  "volume",
  "expose",
  "publish",
] as const;

const STATUSES: readonly string[] = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

function nameMatches(name: string, pattern: string): boolean {
  // Docker treats the value as a regular expression over the name (with its slash).
  try {
    return new RegExp(pattern).test(name);
  } catch {
    return name.includes(pattern);
  }
}

function portMatches(c: ContainerRecord, value: string, published: boolean): boolean {
  const [port, proto = "tcp"] = value.split("/");
  if (published) return (c.network?.ports ?? []).some((p) => String(p.hostPort) === port && p.protocol === proto);
  return Object.keys(c.config.ExposedPorts ?? {}).includes(`${port}/${proto}`);
}

export interface ListQuery {
  all: boolean;
  limit?: number;
  filters: Map<string, string[]>;
}

/** Filters and orders (newest first) the containers to list. */
export function selectContainers(
  containers: readonly ContainerRecord[],
  q: ListQuery,
  imageMatches: (c: ContainerRecord, ref: string) => boolean,
): ContainerRecord[] {
  for (const s of q.filters.get("status") ?? []) {
    if (!STATUSES.includes(s)) throw new InvalidError(`invalid filter 'status=${s}'`, { field: "filters" });
  }
  for (const e of q.filters.get("exited") ?? []) {
    if (!/^-?\d+$/.test(e)) throw new InvalidError(`invalid filter 'exited=${e}'`, { field: "filters" });
  }
  const is = (key: string, pred: (v: string) => boolean) => {
    const values = q.filters.get(key);
    return !values?.length || values.some(pred);
  };
  // Listing by status implies every container, as in Docker.
  const all = q.all || !!q.filters.get("status")?.length || q.limit !== undefined;
  const out = containers
    .filter((c) => all || c.state.status === "running" || c.state.status === "restarting")
    .filter(
      (c) =>
        is("id", (v) => c.id.startsWith(v)) &&
        is("name", (v) => nameMatches(c.name, v)) &&
        (q.filters.get("label") ?? []).every((v) => labelMatches(c.config.Labels, v)) &&
        is("status", (v) => (v as ContainerStatus) === c.state.status) &&
        is("exited", (v) => c.state.status === "exited" && c.state.exitCode === Number(v)) &&
        is("ancestor", (v) => imageMatches(c, v)) &&
        is(
          "network",
          (v) =>
            (c.networkMode !== "user" && v === c.networkMode) ||
            (v === "default" && c.networkMode === "bridge") ||
            !!c.networks?.some((n) => n.name === v || n.networkId === v),
        ) &&
        is("volume", (v) =>
          c.mounts.some((m) => (m.type === "volume" && m.name === v) || m.target === v || (m.type === "bind" && m.source === v)),
        ) &&
        is("expose", (v) => portMatches(c, v, false)) &&
        is("publish", (v) => portMatches(c, v, true)),
    )
    .sort((a, b) => b.created.localeCompare(a.created));
  return q.limit !== undefined && q.limit > 0 ? out.slice(0, q.limit) : out;
}

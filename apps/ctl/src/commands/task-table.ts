// The tasks table of `ctl service ps`, `ctl node ps` and `ctl stack ps`, as docker prints it.
import type { TaskView as TaskJson } from "@flotilla/api-types";
import { table } from "../output";

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} seconds ago` : s < 3600 ? `${Math.round(s / 60)} minutes ago` : `${Math.round(s / 3600)} hours ago`;
}

/** ID, NAME, NODE, DESIRED STATE, CURRENT STATE, ERROR (a pending task's reason when it has no error). */
export function taskTable(tasks: readonly TaskJson[]): string {
  return table(
    tasks.map((t) => ({
      id: t.id.slice(0, 12),
      name: t.name,
      node: t.nodeHostname ?? "",
      desired: t.desiredState,
      current: `${t.state} ${age(t.updatedAt)}`,
      error: t.error ?? (t.state === "PENDING" ? (t.message ?? "") : ""),
    })),
    [
      ["ID", "id"],
      ["NAME", "name"],
      ["NODE", "node"],
      ["DESIRED STATE", "desired"],
      ["CURRENT STATE", "current"],
      ["ERROR", "error"],
    ],
  );
}

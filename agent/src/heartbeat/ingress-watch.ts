/**
 * The agent's long poll for the ingress table (`GET <api>/api/v1/nodes/ingress?version=V`): see
 * table-watch.ts for how the poll behaves.
 */
import type { IngressTable } from "../ingress/ingress-types";
import { watchTable, type TableWatchOptions } from "./table-watch";

export type IngressWatchOptions = Omit<TableWatchOptions<IngressTable>, "what" | "path">;

/** Polls until `signal` aborts or the control plane has no such route. Never rejects. */
export function watchIngress(o: IngressWatchOptions): Promise<void> {
  return watchTable({ ...o, what: "ingress", path: "/api/v1/nodes/ingress" });
}

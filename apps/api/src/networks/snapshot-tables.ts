// Each node's versioned overlay table, computed once per rows snapshot. Heartbeat replies ask for
// a node's table on every beat of every agent in overlays, all from the one snapshot the rows
// cache serves meanwhile (OverlayTablesService): the snapshot is indexed once (libs/core
// nodeNetworkTables) and each node's table and its digest are kept with it, so a beat costs a
// lookup rather than passes over every node and task. A new snapshot (a re-read) starts afresh;
// a snapshot no one holds any more is dropped with its tables (WeakMap).
import { nodeNetworkTables, type NodeNetworkTable, type NodeNetworkTables, type OverlayNodeInfo, type OverlayRows } from "@flotilla/core";
import { contentVersion } from "../common/versioned-table";

/** The table with its version: a digest of the content, so equal tables have equal versions. */
export function versioned(table: Omit<NodeNetworkTable, "version">): NodeNetworkTable {
  return { version: contentVersion(table), ...table };
}

/** One snapshot's tables. */
export interface SnapshotTables {
  /** Whether the snapshot lists the node. */
  has(nodeId: string): boolean;
  /** The node's table with its version (the same object for the same snapshot and node). */
  table(nodeId: string): NodeNetworkTable;
  /** The node's table with `self` as its own row (read after the snapshot), not kept. */
  tableWith(nodeId: string, self: OverlayNodeInfo): NodeNetworkTable;
}

export class TablesBySnapshot {
  private readonly snapshots = new WeakMap<OverlayRows, SnapshotTables>();

  /** The tables of `rows`; the rows must not change afterwards (a snapshot). */
  of(rows: OverlayRows): SnapshotTables {
    let s = this.snapshots.get(rows);
    if (!s) this.snapshots.set(rows, (s = snapshotTables(nodeNetworkTables(rows))));
    return s;
  }
}

function snapshotTables(tables: NodeNetworkTables): SnapshotTables {
  const done = new Map<string, NodeNetworkTable>();
  return {
    has: (nodeId) => tables.has(nodeId),
    table: (nodeId) => {
      let t = done.get(nodeId);
      if (!t) done.set(nodeId, (t = versioned(tables.table(nodeId))));
      return t;
    },
    tableWith: (nodeId, self) => versioned(tables.table(nodeId, self)),
  };
}

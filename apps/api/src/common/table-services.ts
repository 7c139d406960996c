// The bookkeeping behind core's table event scopes for one long-polled table: which services
// the table's last read found its tasks to come from (and whether any overlay network exists),
// and whether a service or network event came since that read started: until a read that
// started after it ends, every task event matters.
import type { TableEvent, TableEventScope, TableServices } from "@flotilla/core";

/** What a read of the table found. */
export interface TableFound {
  services: Iterable<string>;
  networks?: boolean;
}

export class TableServiceWatch {
  private changes = 0;
  private settledAt = -1;
  private ids: ReadonlySet<string> = new Set();
  private networks = true;

  constructor(private readonly scopeOf: (event: TableEvent, services: TableServices, networks: boolean) => TableEventScope) {}

  /** For VersionedTable's `scope`: counts the events that change what is watched, and asks core. */
  readonly scope = (event: TableEvent): TableEventScope => {
    if (event.kind === "service" || event.kind === "network") this.changes++;
    return this.scopeOf(event, { ids: this.ids, settled: this.settledAt === this.changes }, this.networks);
  };

  /**
   * Call as a read of the table starts; call what it returns with what the read found once it
   * has ended. A read that a service or network event overtook settles nothing.
   */
  reading(): (found: TableFound) => void {
    const at = this.changes;
    return (found) => {
      if (at !== this.changes) return;
      this.ids = new Set(found.services);
      this.networks = found.networks ?? true;
      this.settledAt = at;
    };
  }
}

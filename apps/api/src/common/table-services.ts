// The bookkeeping behind core's table event scopes for one long-polled table: which services
// the table's last read found its tasks to come from (and whether any overlay network exists).
//
// A service or network event may change that set. Without a way to read the set alone, every
// task event then matters until a read of the table that started after it ends. With one
// (`readWatched`), the event and those after it are held while the set is read again, then
// judged against it (core heldEventsScope) and handed to `bind`'s callback: a service created
// without ports or networks wakes no poll. While 30 services were created beside 5,000 agents
// holding their polls, each creation had woken all 10,000 polls, and so had every task event
// until the next read, and heartbeats waited behind them in the API's sockets for up to 20 s.
import { heldEventsScope, type TableEvent, type TableEventScope, type TableScopeRule } from "@flotilla/core";

/** What a read of the table (or of its watched set alone) found. */
export interface TableFound {
  services: Iterable<string>;
  networks?: boolean;
}

export class TableServiceWatch {
  private changes = 0;
  private settledAt = -1;
  private ids: ReadonlySet<string> = new Set();
  private networks = true;
  /** Events held until the watched set is read again; undefined while nothing is held. */
  private held: TableEvent[] | undefined;
  private wake?: (scope: Exclude<TableEventScope, "none">) => void;

  constructor(
    private readonly scopeOf: TableScopeRule,
    private readonly readWatched?: () => Promise<TableFound>,
  ) {}

  /** Where the verdict on held events goes (the table's `changed`); without it nothing is held. */
  bind(wake: (scope: Exclude<TableEventScope, "none">) => void): void {
    this.wake = wake;
  }

  /** For VersionedTable's `scope`: counts the events that change what is watched, and asks core. */
  readonly scope = (event: TableEvent): TableEventScope => {
    const changesSet = event.kind === "service" || event.kind === "network";
    if (changesSet) this.changes++;
    if (this.readWatched && this.wake && (changesSet || this.held)) {
      const start = !this.held;
      (this.held ??= []).push(event);
      if (start) void this.settle();
      return "none";
    }
    return this.scopeOf(event, { ids: this.ids, settled: this.settledAt === this.changes }, this.networks);
  };

  /**
   * Call as a read of the table starts; call what it returns with what the read found once it
   * has ended. A read that a service or network event overtook settles nothing.
   */
  reading(): (found: TableFound) => void {
    const at = this.changes;
    return (found) => {
      if (at === this.changes) this.found(at, found);
    };
  }

  private found(at: number, found: TableFound): void {
    this.ids = new Set(found.services);
    this.networks = found.networks ?? true;
    this.settledAt = at;
  }

  /** Reads the watched set until no service or network event overtakes the read; then judges the held events. */
  private async settle(): Promise<void> {
    const before = { ids: this.ids, networks: this.networks };
    for (;;) {
      const at = this.changes;
      let found: TableFound;
      try {
        found = await this.readWatched!();
      } catch {
        // Unknown (the database is away): every poll reads, as without a watch.
        this.held = undefined;
        this.wake!("all");
        return;
      }
      if (at !== this.changes) continue;
      this.found(at, found);
      const held = this.held ?? [];
      this.held = undefined;
      const scope = heldEventsScope(held, before, { ids: this.ids, networks: this.networks }, this.scopeOf);
      if (scope !== "none") this.wake!(scope);
      return;
    }
  }
}

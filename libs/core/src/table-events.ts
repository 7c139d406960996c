// Which events may change a table the agents long-poll (the ingress mesh's, a node's overlay
// networks'), and whose. Both are made of the tasks of a few services (those with ingress ports,
// those attached to overlay networks); while a cluster converges, nearly every event is about
// some other service's task, and while a fleet registers, about a node that is in no one's table
// but its own. Each such event had woken every waiting poll (two per agent) to read and compare:
// 5,000 agents, woken 5,000 times while they registered.

/** The services whose tasks a table is made of, as its last read found them. */
export interface TableServices {
  readonly ids: ReadonlySet<string>;
  /**
   * False until a read that started after the last service event has ended: a service given
   * ingress ports or networks since then is not in `ids` yet, so any task may matter.
   */
  readonly settled: boolean;
}

/** An event as the tables see it. */
export interface TableEvent {
  readonly kind: string;
  readonly subjectId?: string | null;
  readonly data?: unknown;
}

/** Whose table an event may change: nobody's, everybody's, or only these nodes' own tables. */
export type TableEventScope = "none" | "all" | { readonly nodes: readonly string[] };

/** A table's rule for its events (ingressEventScope, overlayEventScope). */
export type TableScopeRule = (event: TableEvent, services: TableServices, networks: boolean) => TableEventScope;

/**
 * Whether the event may change the table: every event but a task's, and a task's when its
 * service is one of the table's (or not known to be: unsettled, or no service named).
 */
export function tableEventMatters(event: TableEvent, services: TableServices): boolean {
  if (event.kind !== "task" || !services.settled) return true;
  const serviceId = (event.data as { serviceId?: unknown } | null | undefined)?.serviceId;
  return typeof serviceId !== "string" || services.ids.has(serviceId);
}

/**
 * The ingress table: a node counts only as the host of running tasks of services with ingress
 * ports, so without such services (settled) a node's event changes nothing.
 */
export function ingressEventScope(event: TableEvent, services: TableServices): TableEventScope {
  if (event.kind === "node") return services.settled && services.ids.size === 0 ? "none" : "all";
  return tableEventMatters(event, services) ? "all" : "none";
}

/**
 * The overlay tables: each names its own node's address, and its peers only through networks.
 * Without any network (as the last read found, settled), a node's event changes that node's
 * table alone.
 */
export function overlayEventScope(event: TableEvent, services: TableServices, networks: boolean): TableEventScope {
  if (event.kind === "node")
    return !networks && services.settled && typeof event.subjectId === "string" ? { nodes: [event.subjectId] } : "all";
  return tableEventMatters(event, services) ? "all" : "none";
}

/** What a read of the watched set found: the services a table is made of, and whether any network exists. */
export interface TableWatched {
  readonly ids: ReadonlySet<string>;
  readonly networks: boolean;
}

/**
 * The verdict on events held while a service or network event's effect was read (`before` the
 * set as it was, `after` as read since): a service event matters if its service is in either
 * (its ports or networks changed, were given, or were taken away), a network event always, and
 * the others as `scopeOf` judges them against the set read. One service created without ports or
 * networks had woken every poll of 5,000 agents, and so had every task event until a read.
 */
export function heldEventsScope(
  held: readonly TableEvent[],
  before: TableWatched,
  after: TableWatched,
  scopeOf: TableScopeRule,
): TableEventScope {
  const nodes = new Set<string>();
  const services: TableServices = { ids: after.ids, settled: true };
  for (const event of held) {
    let scope: TableEventScope;
    if (event.kind === "network") scope = "all";
    else if (event.kind === "service")
      scope = typeof event.subjectId !== "string" || before.ids.has(event.subjectId) || after.ids.has(event.subjectId) ? "all" : "none";
    else scope = scopeOf(event, services, after.networks);
    if (scope === "all") return "all";
    if (scope !== "none") for (const n of scope.nodes) nodes.add(n);
  }
  return nodes.size ? { nodes: [...nodes] } : "none";
}

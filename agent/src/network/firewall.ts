/**
 * Our iptables chains for one bridge: install them, add and remove a container's port rules,
 * bring the per-container rules in line with a list of endpoints, and remove everything.
 * Reads what is there with `iptables -S` and changes it with one restore transaction per table.
 */
import type { Iptables } from "./iptables";
import {
  chainOf,
  deleteOf,
  dynamicChains,
  endpointRules,
  insertOf,
  jumpRules,
  staticChains,
  tagIn,
  type ChainNames,
  type Table,
  type TableListing,
} from "./nat-rules";
import type { EndpointRecord } from "./state-file";

const TABLES: readonly Table[] = ["nat", "filter"];

/** Our chains and rules for one bridge, through one iptables backend. */
export class Firewall {
  constructor(
    readonly iptables: Iptables,
    readonly chains: ChainNames,
    private readonly bridge: string,
    private readonly subnet: string,
  ) {}

  /**
   * Creates missing chains and jumps, and rewrites the static chains whole (a declared chain is
   * flushed inside the same transaction, so there is no moment without rules). Per-container
   * chains are only created, never flushed: after an agent restart their rules are still live.
   */
  async install(): Promise<void> {
    const dynamic = dynamicChains(this.chains);
    const fixed = staticChains(this.chains, this.bridge, this.subnet);
    const jumps = jumpRules(this.chains);
    for (const table of TABLES) {
      const have = await this.iptables.list(table);
      const lines: string[] = [];
      // Order matters: a chain must be declared before a rule jumps to it.
      for (const chain of dynamic[table]) if (!have.chains.has(chain)) lines.push(`:${chain} - [0:0]`);
      for (const { chain, rules } of fixed[table]) lines.push(`:${chain} - [0:0]`, ...rules);
      for (const jump of jumps[table]) if (!have.rules.includes(jump)) lines.push(insertOf(jump));
      await this.iptables.apply(`iptables ${table}`, table, lines);
    }
  }

  /** Adds a container's DNAT and ACCEPT rules (bridge mode with ports). */
  async addEndpoint(r: EndpointRecord): Promise<void> {
    const rules = endpointRules(this.chains, r.containerId, r.ipAddress, r.ports);
    for (const table of TABLES) await this.iptables.apply(`iptables ${table}`, table, rules[table]);
  }

  /** Removes every rule in our per-container chains tagged with one of these containers. */
  async removeTagged(isGone: (containerId: string) => boolean): Promise<void> {
    for (const table of TABLES) {
      const have = await this.iptables.list(table);
      const lines = this.tagged(have, table)
        .filter(([id]) => isGone(id))
        .map(([, rule]) => deleteOf(rule));
      await this.iptables.apply(`iptables ${table}`, table, lines);
    }
  }

  /**
   * Makes the per-container rules exactly those of `endpoints`: missing ones are added,
   * stale or foreign-tagged ones removed. Returns the containers whose rules had to change.
   */
  async reconcile(endpoints: readonly EndpointRecord[]): Promise<Set<string>> {
    const changed = new Set<string>();
    const byId = new Map(endpoints.map((e) => [e.containerId, e]));
    for (const table of TABLES) {
      const have = await this.iptables.list(table);
      const present = new Map<string, string[]>();
      for (const [id, rule] of this.tagged(have, table)) present.set(id, [...(present.get(id) ?? []), rule]);
      const lines: string[] = [];
      for (const [id, rules] of present) if (!byId.has(id)) lines.push(...rules.map(deleteOf));
      for (const e of endpoints) {
        const want = e.mode === "bridge" || e.mode === "user" ? endpointRules(this.chains, e.containerId, e.ipAddress, e.ports)[table] : [];
        const got = present.get(e.containerId) ?? [];
        // Compared as sets of `iptables -S` lines; on any difference the container's rules are
        // replaced whole, which also heals a rule whose printed form we did not predict.
        const same = want.length === got.length && want.every((w) => got.includes(w));
        if (same) continue;
        changed.add(e.containerId);
        lines.push(...got.map(deleteOf), ...want);
      }
      await this.iptables.apply(`iptables ${table}`, table, lines);
    }
    return changed;
  }

  /** Removes the jumps to our chains and the chains themselves; nothing to do when absent. */
  async uninstall(): Promise<void> {
    const ours = new Set(Object.values(this.chains));
    for (const table of TABLES) {
      const have = await this.iptables.list(table);
      const jumps = have.rules.filter((r) => !ours.has(chainOf(r)) && ours.has(r.split(" -j ")[1]?.split(" ")[0] ?? ""));
      const present = [...ours].filter((c) => have.chains.has(c));
      // Flush all before deleting any: FWD jumps to PORTS, and a referenced chain cannot go.
      const lines = [...jumps.map(deleteOf), ...present.map((c) => `-F ${c}`), ...present.map((c) => `-X ${c}`)];
      await this.iptables.apply(`iptables ${table}`, table, lines);
    }
  }

  /** [containerId, rule] for each tagged rule in our per-container chains. */
  private tagged(have: TableListing, table: Table): [string, string][] {
    const chains = new Set(dynamicChains(this.chains)[table]);
    const out: [string, string][] = [];
    for (const rule of have.rules) {
      const id = chains.has(chainOf(rule)) ? tagIn(rule) : undefined;
      if (id !== undefined) out.push([id, rule]);
    }
    return out;
  }
}

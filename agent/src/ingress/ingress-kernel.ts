/**
 * The routing mesh in the kernel: applies the rules `ingress-rules.ts` computes with
 * iptables-restore, one atomic transaction per table on our own chains (declaring a chain in a
 * --noflush restore flushes it in the same transaction, so no connection ever meets a half-built
 * chain), and removes chains and jumps on close(). Applies and refreshes are serialized.
 */
import { networkInterfaces } from "node:os";
import { Iptables, type IptablesBackend } from "../network/iptables";
import { checkIngressTable } from "./ingress-table";
import { ingressChains, ingressJumps, ingressRules, type IngressChains, type LocalEndpoint } from "./ingress-rules";
import type { IngressApplyResult, IngressDataPlane, IngressPort, IngressTable } from "./ingress-types";

export interface KernelIngressOptions {
  /** The agent's chain prefix (--chain-prefix); default FLOTILLA. */
  chainPrefix?: string;
  /** The backend the network module recorded, so both see the same tables. */
  backend?: IptablesBackend;
  /** Published ports of this node's running containers (read at every apply and refresh). */
  localEndpoints: () => LocalEndpoint[];
  /** This node's IPv4 addresses; default: every interface's. */
  localAddresses?: () => string[];
  log?: (message: string) => void;
}

/** Every IPv4 address of this network namespace's interfaces. */
export function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === "IPv4")
    .map((a) => a!.address);
}

export class KernelIngress implements IngressDataPlane {
  readonly kind = "kernel";
  private readonly chains: IngressChains;
  private readonly log: (message: string) => void;
  private ports: IngressPort[] | undefined;
  private tableVersion: string | undefined;
  private applied: { version: string; script: string } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly iptables: Iptables,
    private readonly options: KernelIngressOptions,
  ) {
    this.chains = ingressChains(options.chainPrefix ?? "FLOTILLA");
    this.log = options.log ?? (() => {});
  }

  /** Finds iptables; rejects (NetworkCommandError) where there is none, so the caller can fall back. */
  static async create(options: KernelIngressOptions): Promise<KernelIngress> {
    return new KernelIngress(await Iptables.detect(options.backend), options);
  }

  get version(): string | undefined {
    return this.applied?.version;
  }

  apply(table: IngressTable): Promise<IngressApplyResult> {
    return this.serialize(async () => {
      if (this.closed) return { errors: [] };
      const checked = checkIngressTable(table);
      for (const e of checked.errors) this.log(`ingress: port ${e.port} ignored: ${e.message}`);
      this.ports = checked.ports;
      this.tableVersion = checked.version;
      const errors = await this.sync();
      return { errors: [...checked.errors, ...errors].sort((a, b) => a.port - b.port) };
    });
  }

  refresh(): Promise<void> {
    return this.serialize(async () => {
      if (!this.closed && this.ports) await this.sync();
    });
  }

  /** Removes the jumps and our chains; the conntrack entries of open connections keep them going. */
  close(): Promise<void> {
    return this.serialize(async () => {
      if (this.closed) return;
      this.closed = true;
      const ours = new Set(Object.values(this.chains));
      const jumps = ingressJumps(this.chains);
      for (const table of ["nat", "filter"] as const) {
        const have = await this.iptables.list(table);
        const present = [...ours].filter((c) => have.chains.has(c));
        const lines = [
          ...jumps[table].filter((j) => have.rules.includes(j)).map((j) => `-D ${j.slice(3)}`),
          ...present.map((c) => `-F ${c}`),
          ...present.map((c) => `-X ${c}`),
        ];
        await this.iptables.apply(`ingress: remove ${table} rules`, table, lines);
      }
      this.applied = undefined;
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Computes the rules for the last table and what runs here; restores them when they changed. */
  private async sync(): Promise<{ port: number; message: string }[]> {
    const rules = ingressRules(this.chains, this.ports ?? [], {
      addresses: (this.options.localAddresses ?? interfaceAddresses)(),
      endpoints: this.options.localEndpoints(),
    });
    const script = JSON.stringify([rules.nat, rules.filter]);
    if (this.applied?.script === script) {
      this.applied = { version: this.tableVersion!, script };
      return [...rules.errors];
    }
    // Filter first: by the time a DNAT sends a connection to another node, FORWARD accepts it.
    for (const table of ["filter", "nat"] as const) {
      const have = await this.iptables.list(table);
      const wanted = ingressJumps(this.chains)[table];
      const jumps = wanted.filter((j) => !have.rules.includes(j)).map((j) => `-I ${j.slice(3).replace(" ", " 1 ")}`);
      // Chains are declared before the jumps to them; a declared chain is flushed and refilled.
      await this.iptables.apply(`ingress: ${table} rules`, table, [...rules[table], ...jumps]);
    }
    const summary = rules.plans
      .map((p) => `${p.port}${p.traffic === "local" ? " (local)" : ""} → ${p.targets.map((t) => t.to).join(", ") || "nothing"}`)
      .join("; ");
    this.log(`ingress: kernel rules for table ${this.tableVersion}: ${summary || "no ports"}`);
    this.applied = { version: this.tableVersion!, script };
    return [...rules.errors];
  }
}

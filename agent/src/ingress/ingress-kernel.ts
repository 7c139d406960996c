/**
 * The routing mesh in the kernel: applies the rules `ingress-rules.ts` computes with
 * iptables-restore, one atomic transaction per table on our own chains (declaring a chain in a
 * --noflush restore flushes it in the same transaction, so no connection ever meets a half-built
 * chain), and removes chains and jumps on close(). Applies and refreshes are serialized.
 *
 * Each ingress port is also held by a listening socket on 0.0.0.0 (holdHostPort, as the network
 * module holds ordinary published ports): a DNAT rule is not a socket, so without it a process of
 * this node could bind the port, or the kernel hand it out as an ephemeral port, and be shadowed
 * by the rule. The socket lives in the agent's network namespace, where the rules are. A port that
 * cannot be held (another process had it first) gets no rule and is retried with every refresh.
 */
import { networkInterfaces } from "node:os";
import { Iptables, type IptablesBackend } from "../network/iptables";
import { ANY_IP, holdHostPort, type HeldPort } from "../network/ports";
import { checkIngressTable } from "./ingress-table";
import { forwardedPorts, ingressChains, ingressJumps, ingressRules, type IngressChains, type LocalEndpoint } from "./ingress-rules";
import type { IngressApplyResult, IngressDataPlane, IngressPort, IngressPortError, IngressTable } from "./ingress-types";

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
  /** The sockets holding the ingress ports, by port. */
  private readonly held = new Map<number, HeldPort>();
  /** Ports of the table no socket of ours could take, with the reason last logged. */
  private readonly holdErrors = new Map<number, string>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly iptables: Iptables,
    private readonly options: KernelIngressOptions,
  ) {
    this.chains = ingressChains(options.chainPrefix ?? "FLOTILLA");
    this.log = options.log ?? (() => {});
  }

  /**
   * Finds iptables; rejects (NetworkCommandError) where there is none, so the caller can fall back.
   * Holds at once the ports the rules of a killed predecessor still forward, so none is free while
   * the first table is on its way.
   */
  static async create(options: KernelIngressOptions): Promise<KernelIngress> {
    const ingress = new KernelIngress(await Iptables.detect(options.backend), options);
    await ingress.reholdLeftPorts();
    return ingress;
  }

  /** Version of the last table applied in full: undefined while one of its ports is not held, so it comes again. */
  get version(): string | undefined {
    return this.holdErrors.size === 0 ? this.applied?.version : undefined;
  }

  /** The ingress ports our sockets hold, ascending. */
  get heldPorts(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
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
      // Only once no rule forwards them: a process may bind the ports now.
      await this.release(() => true);
      this.holdErrors.clear();
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Holds the table's ports, computes the rules for those held and what runs here, restores them
   * when they changed, then lets go of the ports no longer listed. Ordering: a port is held before
   * its rule exists and released after its rule is gone, so no process ever binds a forwarded port.
   */
  private async sync(): Promise<IngressPortError[]> {
    const listed = this.ports ?? [];
    const holdErrors = await this.hold(listed);
    const served = listed.filter((p) => this.held.has(p.port));
    const rules = ingressRules(this.chains, served, {
      addresses: (this.options.localAddresses ?? interfaceAddresses)(),
      endpoints: this.options.localEndpoints(),
    });
    const script = JSON.stringify([rules.nat, rules.filter]);
    if (this.applied?.script === script) {
      this.applied = { version: this.tableVersion!, script };
      await this.release((port) => !listed.some((p) => p.port === port));
      return [...rules.errors, ...holdErrors];
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
    await this.release((port) => !listed.some((p) => p.port === port));
    return [...rules.errors, ...holdErrors];
  }

  /** Holds every listed port not held yet; the ports taken by another process, as errors (logged when new). */
  private async hold(ports: readonly IngressPort[]): Promise<IngressPortError[]> {
    const listed = new Set(ports.map((p) => p.port));
    for (const port of this.holdErrors.keys()) if (!listed.has(port)) this.holdErrors.delete(port);
    const errors: IngressPortError[] = [];
    for (const p of ports) {
      if (this.held.has(p.port)) continue;
      const hold = await holdHostPort(ANY_IP, p.port, "tcp");
      if (hold.free) {
        this.held.set(p.port, hold);
        if (this.holdErrors.delete(p.port)) this.log(`ingress: port ${p.port} (${p.serviceName}) held and forwarded (it was taken before)`);
        continue;
      }
      const message = `host port ${p.port} is taken by another process on this node (${hold.code}); not forwarded here until it is free`;
      errors.push({ port: p.port, message });
      if (this.holdErrors.get(p.port) !== message) this.log(`ingress: port ${p.port} (${p.serviceName}): ${message}`);
      this.holdErrors.set(p.port, message);
    }
    return errors;
  }

  /** Closes the sockets of the held ports `which` picks. */
  private async release(which: (port: number) => boolean): Promise<void> {
    const going = [...this.held].filter(([port]) => which(port));
    for (const [port] of going) this.held.delete(port);
    await Promise.all(going.map(([, h]) => h.release()));
  }

  /**
   * After a restart: the ports a killed agent's rules still forward are free (its sockets died
   * with it). Holds them until the first table says which stay; one a process took meanwhile is
   * logged (that process is shadowed by the rule until the table comes).
   */
  private async reholdLeftPorts(): Promise<void> {
    let ports: number[];
    try {
      ports = forwardedPorts(this.chains, (await this.iptables.list("nat")).rules);
    } catch (e) {
      this.log(`ingress: could not read the rules left by a previous agent: ${(e as Error).message}`);
      return;
    }
    const lost: string[] = [];
    for (const port of ports) {
      const hold = await holdHostPort(ANY_IP, port, "tcp");
      if (hold.free) this.held.set(port, hold);
      else lost.push(`${port} (${hold.code})`);
    }
    if (this.held.size > 0) this.log(`ingress: holding ports ${this.heldPorts.join(", ")}, which the rules left in place forward`);
    if (lost.length > 0) this.log(`ingress: ports forwarded by the rules left in place but bound by another process: ${lost.join(", ")}`);
  }
}

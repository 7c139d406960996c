// The provision worker: runs one machine operation per job (create, start, stop, restart, kill,
// rm, provision, regenerate-certs, upgrade). Each step is a "machine progress" event and a BullMQ
// progress update; a failed create leaves an ERROR row naming the step and nothing running, except
// one refused by its preCreateCheck, which leaves nothing at all.
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from "@nestjs/common";
import type { Subscription } from "rxjs";
import { EventsService } from "../events/events.service";
import { NodesService } from "../nodes/nodes.service";
import type { Job } from "bullmq";
import { NotSupportedError, formatReplicaUrls } from "@flotilla/core";
import type { Driver, DriverEvent, SshEndpoint } from "@flotilla/drivers";
import {
  clientAllowList,
  provision,
  regenerateCerts,
  restartAgent,
  upgradeAgent,
  writeClientAllowList,
  type AgentTarget,
} from "@flotilla/provision";
import { rm } from "node:fs/promises";
import type { MachineState } from "../generated/prisma/client";
import { JobHandlers } from "../queues/job-handlers";
import { TokensService } from "../tokens/tokens.service";
import { JoinService } from "../join/join.service";
import { QUEUE, type ProvisionJob } from "../queues/queue-names";
import { agentTokenName, MachineHost } from "./machine-host";
import { MachinesRepository, type MachineRow } from "./machines.repository";
import { MachinesService, type Operation } from "./machines.service";
import { ControlPlaneReplicasService } from "./control-plane-replicas.service";

const JOB_TIMEOUT_MS = 20 * 60_000;

class StepError extends Error {
  constructor(
    readonly step: string,
    readonly original: unknown,
  ) {
    const msg = original instanceof Error ? original.message : String(original);
    // Provisioner errors already read "provision NAME: step: cause".
    super(/^(provision|regenerate certs|restart agent|stop agent|upgrade|control plane) /.test(msg) ? msg : `${step}: ${msg}`);
  }
}

@Injectable()
export class MachineJobsService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger("machines");
  private nodes?: Subscription;

  constructor(
    private readonly repo: MachinesRepository,
    private readonly host: MachineHost,
    private readonly handlers: JobHandlers,
    private readonly tokens: TokensService,
    private readonly joins: JoinService,
    private readonly events: EventsService,
    private readonly nodesService: NodesService,
    private readonly machines: MachinesService,
    private readonly replicas: ControlPlaneReplicasService,
  ) {}

  /**
   * Machines provisioned before agents had a client allow list accept any certificate the CA
   * signed (another machine's included) until their next provision, start or regenerate-certs.
   * Nobody should have to remember that after an upgrade: at start the worker gives each READY
   * one its list now, as a regenerate-certs that re-issues nothing it does not need to (the
   * agent restarts once, for the run script that turns the list on). Several workers starting
   * together queue one job per machine (the job id is the machine's and the operation's).
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.catchUpClientLists().catch((e: Error) => this.logger.warn(`client allow lists not given yet: ${e.message}`));
  }

  async catchUpClientLists(): Promise<string[]> {
    const queued: string[] = [];
    for (const m of await this.repo.withoutClientList()) {
      try {
        await this.machines.operate(m.name, "regenerate-certs", { force: false, reason: "client allow list" });
        queued.push(m.name);
        this.logger.log(`machine ${m.name}: giving its agent the client allow list (provisioned before there was one)`);
      } catch (e) {
        this.logger.warn(`machine ${m.name}: client allow list not given yet: ${(e as Error).message}`);
      }
    }
    return queued;
  }

  onModuleInit(): void {
    this.handlers.register(QUEUE.provision, (job: Job) => this.handle(job));
    // An agent's node registers by host name (the machine's name) after the machine is READY:
    // link it to its machine as soon as it does. Idempotent, so every worker replica may try.
    this.nodes = this.events.stream().subscribe((e) => {
      if (e.kind !== "node" || (e.action !== "register" && e.action !== "ready")) return;
      const hostname = typeof e.data.hostname === "string" ? e.data.hostname : undefined;
      if (!hostname) return;
      this.repo.linkNodeByHostname(hostname).catch((err: Error) => this.logger.warn(`linking node ${hostname}: ${err.message}`));
    });
  }

  onModuleDestroy(): void {
    this.nodes?.unsubscribe();
  }

  private async handle(job: Job): Promise<unknown> {
    const data = job.data as ProvisionJob;
    const operation = data.operation as Operation;
    const machine = await this.repo.findById(data.machineId);
    if (!machine) return { outcome: "gone" };
    const signal = AbortSignal.timeout(JOB_TIMEOUT_MS);
    // Progress events are written in order, without making the driver wait for the database.
    let chain = Promise.resolve();
    const progress = (step: string, message: string, percent: number) => {
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      chain = chain
        .then(() => job.updateProgress({ step, message, percent: p }))
        .then(() => this.repo.progress(machine.id, { step, message, percent: p, operation }))
        .catch((e: Error) => this.logger.warn(`progress event for ${machine.name}: ${e.message}`));
    };
    // A state event ends `ctl`'s following of the operation: every progress event goes first, or
    // a last message (such as "ignoring (--force)") would never be shown.
    const setState: MachinesRepository["setState"] = async (...args) => {
      await chain;
      return this.repo.setState(...args);
    };
    let driverPercent = 5;
    const onDriver = (e: DriverEvent) => {
      driverPercent = Math.min(35, driverPercent + 5);
      progress(e.step, e.message, driverPercent);
    };
    const params = data.params ?? {};
    try {
      let driver: Driver;
      try {
        driver = this.host.driver(machine, this.repo.hostKeyPin(machine, this.host.legacyHostKeyFile(machine.name)), onDriver);
      } catch (e) {
        // Stored options a driver no longer accepts must not make a machine impossible to remove
        // with --force: every driver call fails with the reason, which rm --force ignores.
        if (operation !== "rm") throw e;
        driver = new Proxy({} as Driver, { get: () => () => Promise.reject(e) });
      }
      const replicaJob = { machine, ssh: () => driver.getSSH(signal), signal, progress };
      if (operation === "control-plane-add" || operation === "control-plane-rm") {
        // The agent is untouched: the machine goes back to the state it had, whatever the replica's outcome.
        const result =
          operation === "control-plane-add"
            ? await this.replicas.install(replicaJob)
            : await this.replicas.uninstall(replicaJob, params.force === true);
        await setState(machine.id, (params.previousState as MachineState | undefined) ?? "READY", { data: { operation } });
        return result;
      }
      if (operation === "rm") await this.replicas.removeFromSurvivingHost(replicaJob, driver.driverName);
      const run = new Run(this.repo, setState, this.host, this.tokens, this.joins, this.nodesService, machine, driver, progress, signal);
      const result = await run.execute(operation, params);
      await chain;
      return result;
    } catch (e) {
      // The job's progress events first: whoever follows it stops at its final state.
      await chain;
      const err = e instanceof StepError ? e : new StepError(operation, e);
      this.logger.warn(`machine ${machine.name}: ${operation} failed: ${err.message}`);
      const previous = params.previousState as MachineState | undefined;
      const cause = err.original;
      if (operation === "create" && err.step === "preCreateCheck") {
        // Refused before anything was made: keep nothing (no ERROR row to rm -f later).
        await rm(this.host.storeDir(machine.name), { recursive: true, force: true }).catch(() => undefined);
        await this.repo.discard(machine.id, machine.name, err.message, { operation, step: err.step });
      } else if (operation === "create") {
        await setState(machine.id, "ERROR", { reason: err.message, action: "failed", data: { operation, step: err.step } });
      } else if ((cause instanceof NotSupportedError || operation.startsWith("control-plane-")) && previous) {
        // A replica that did not install or go leaves the machine (and its agent) as it was.
        await setState(machine.id, previous, { reason: err.message, action: "failed", data: { operation, step: err.step } });
      } else if (operation !== "rm" || (await this.repo.findById(machine.id))) {
        await setState(machine.id, "ERROR", { reason: err.message, action: "failed", data: { operation, step: err.step } });
      }
      throw new Error(err.message, { cause: e });
    }
  }
}

/** One operation on one machine. */
class Run {
  constructor(
    private readonly repo: MachinesRepository,
    private readonly setState: MachinesRepository["setState"],
    private readonly host: MachineHost,
    private readonly tokens: TokensService,
    private readonly joins: JoinService,
    private readonly nodes: NodesService,
    private machine: MachineRow,
    private readonly driver: Driver,
    private readonly progress: (step: string, message: string, percent: number) => void,
    private readonly signal: AbortSignal,
  ) {}

  private async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw e instanceof StepError ? e : new StepError(name, e);
    }
  }

  async execute(op: Operation, params: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case "create":
        return this.create();
      case "start":
        await this.step("start", () => this.driver.start(this.signal));
        return this.afterBoot();
      case "restart":
        await this.step("restart", () => this.driver.restart(this.signal));
        return this.afterBoot();
      case "stop":
        await this.step("stop", () => this.driver.stop(this.signal));
        await this.setState(this.machine.id, "STOPPED");
        return { state: "STOPPED" };
      case "kill":
        await this.step("kill", () => this.driver.kill(this.signal));
        await this.setState(this.machine.id, "STOPPED");
        return { state: "STOPPED" };
      case "rm":
        return this.remove(params.force === true);
      case "provision":
        await this.provision(await this.endpoint());
        return { state: "READY" };
      case "regenerate-certs": {
        const { ip } = await this.endpoint();
        // --client-certs: a new client certificate for the machine; the agent refuses the old one at once.
        const clients = params.clientCerts === true ? "rotate" : "renew";
        const reissued = await this.step("regenerate certs", async () =>
          regenerateCerts({ ...(await this.target(ip, clients)), force: params.force !== false, engine: this.engine() }),
        );
        await this.repo.clientsWritten(this.machine.id);
        await this.ready();
        return { reissued };
      }
      case "upgrade": {
        const { ip } = await this.endpoint();
        const version = await this.step("upgrade", async () =>
          upgradeAgent({ ...(await this.target(ip, "keep")), agentBundle: { path: this.host.config.agentBundle } }),
        );
        await this.ready(version);
        return { agentVersion: version };
      }
    }
    throw new Error(`unknown operation ${String(op)}`);
  }

  private async create(): Promise<unknown> {
    this.progress("preCreateCheck", `checking the ${this.driver.driverName} driver's prerequisites`, 2);
    await this.step("preCreateCheck", () => this.driver.preCreateCheck(this.signal));
    try {
      this.progress("create", `creating the ${this.driver.driverName} machine`, 5);
      await this.step("create", () => this.driver.create(this.signal));
      await this.provision(await this.endpoint());
      return { state: "READY" };
    } catch (e) {
      // Nothing half-created stays running: the driver undoes what it made.
      this.progress("cleanup", "removing what was created", 100);
      await this.driver.remove().catch(() => undefined);
      throw e;
    }
  }

  /** The machine's IP and SSH endpoint, stored on the row. */
  private async endpoint(): Promise<{ ip: string; ssh: SshEndpoint }> {
    const ip = await this.step("ip", () => this.driver.getIP(this.signal));
    const ssh = await this.step("ssh", () => this.driver.getSSH(this.signal));
    // A key the driver made (netns) is the machine's from the start: the record shows it too.
    if (ssh.hostKey && !ssh.hostKeyPin)
      await this.repo.hostKeyPin(this.machine, this.host.legacyHostKeyFile(this.machine.name)).pinFirst(ssh.hostKey);
    if (ip !== this.machine.ip || ssh.user !== this.machine.sshUser || ssh.port !== this.machine.sshPort) {
      const { machine } = await this.setState(this.machine.id, this.machine.state, {
        ip,
        sshUser: ssh.user,
        sshPort: ssh.port,
        reason: this.machine.stateReason,
      });
      this.machine = machine;
    }
    return { ip, ssh };
  }

  /**
   * What provisioning needs. The agent accepts the control plane's client certificate and the
   * machine's own (`clients`: kept as it is, renewed when it expires soon, or rotated); the
   * operations that write the agent's allow list are the ones that may renew or rotate it.
   */
  private async target(ip: string, clients: "keep" | "renew" | "rotate" = "renew"): Promise<AgentTarget> {
    const ssh = await this.driver.getSSH(this.signal);
    const own = await this.host.machineClientCert(this.machine.name, { renew: clients !== "keep", rotate: clients === "rotate" });
    return {
      ssh,
      machineName: this.machine.name,
      ip,
      ca: await this.host.authority(),
      client: await this.host.controlPlaneClient(),
      allowedClients: clientAllowList([own.cert]),
      serverCertCopy: this.host.serverCertCopy(this.machine.name),
      signal: this.signal,
      agentTimeoutMs: this.host.config.agentTimeoutMs,
      progress: (p) => this.progress(p.step, p.message, 40 + p.percent * 0.6),
    };
  }

  private async provision({ ip }: { ip: string }): Promise<void> {
    const { machine } = await this.setState(this.machine.id, "PROVISIONING", { ip });
    this.machine = machine;
    const result = await provision({
      ...(await this.target(ip)),
      controlPlane: await this.joinToken(),
      agentBundle: { path: this.host.config.agentBundle },
      engine: this.engine(),
    });
    await this.repo.clientsWritten(this.machine.id);
    await this.ready(result.agentVersion);
  }

  /**
   * A one-time join token for the agent (older unused ones stop working), when agents are to
   * report. The agent's current API token keeps working until the agent trades the new join
   * token, which replaces it: a re-provisioning whose agent never comes back loses nothing.
   */
  private async joinToken(): Promise<{ url: string; joinToken: string } | undefined> {
    // Every replica's URL: the agent fails over between them (and later replies keep it current).
    const urls = this.host.config.agentApiUrls;
    if (!urls.length) return undefined;
    const url = formatReplicaUrls(urls);
    const { token, expiresAt } = await this.joins.issue(this.machine.name);
    this.progress("join token", `issued a one-time join token for the agent (valid until ${expiresAt.toISOString()})`, 38);
    return { url, joinToken: token };
  }

  /** After the host booted: new IP → new certificate; in any case (re)start the agent and wait. */
  private async afterBoot(): Promise<unknown> {
    const { ip } = await this.endpoint();
    const target = await this.target(ip);
    // The engine options too: a machine provisioned before agents had a client allow list gets
    // the run script that turns it on (regenerateCerts restarts the agent for it then).
    const reissued = await this.step("regenerate certs", () => regenerateCerts({ ...target, engine: this.engine() }));
    if (!reissued) await this.step("start agent", () => restartAgent(target));
    await this.repo.clientsWritten(this.machine.id);
    await this.ready();
    return { state: "READY", reissued };
  }

  private engine() {
    return { ...this.host.engineOptions(this.machine), denyBinds: this.host.config.controlPlanePaths };
  }

  private async ready(agentVersion?: string): Promise<void> {
    const { machine } = await this.setState(this.machine.id, "READY", agentVersion ? { agentVersion } : {});
    this.machine = machine;
    await this.repo.linkNode(machine);
  }

  /**
   * A generic host outlives its machine, and so does its agent: tell it to accept only the control
   * plane from now on, so the removed machine's client certificate opens nothing. Best effort (the
   * host may be gone), bounded.
   */
  private async revokeOnSurvivingHost(): Promise<void> {
    if (this.driver.driverName !== "generic" || !this.machine.ip) return;
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(20_000)]);
    try {
      const target = { ...(await this.target(this.machine.ip, "keep")), signal, sshTimeoutMs: 10_000, allowedClients: clientAllowList([]) };
      await writeClientAllowList(target);
      this.progress("revoke", "the host's agent now accepts only the control plane's certificate", 10);
    } catch (e) {
      this.progress("revoke", `could not reach the host to revoke its client certificate: ${(e as Error).message}`, 10);
    }
  }

  private async remove(force: boolean): Promise<unknown> {
    await this.revokeOnSurvivingHost();
    try {
      await this.step("remove", () => this.driver.remove(this.signal));
    } catch (e) {
      if (!force) throw e;
      this.progress("remove", `ignoring (--force): ${(e as Error).message}`, 50);
    }
    // What the machine held: its client certificate (the only agent that accepted it is gone, or
    // was told above), its agent token and any unused join token.
    await this.host.removeUserCerts(this.machine.name);
    await this.tokens.revoke(agentTokenName(this.machine.name)).catch(() => undefined);
    await this.joins.forget(this.machine.name);
    await rm(this.host.storeDir(this.machine.name), { recursive: true, force: true });
    // Its node goes with it, now: its tasks are replaced at once rather than after the node
    // misses its heartbeats, and no dead node is left to remove by hand.
    const node = await this.repo.nodeOf(this.machine);
    if (node) await this.nodes.remove(node, true);
    await this.repo.delete(this.machine.id, this.machine.name);
    return { removed: true };
  }
}

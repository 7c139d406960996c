// Control-plane API replicas on manager machines (`ctl node promote --control-plane`). The request
// side checks with core's checkReplicaAdd, records the replica (installing) and queues a machine
// operation; the provision worker then installs or removes it over the machine's SSH
// (libs/provision control-plane.ts) and records the outcome. Running replicas join the replica
// lists every process serves (ReplicaUrls).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Inject, Injectable } from "@nestjs/common";
import type { ControlPlaneReplicaView, OperationAccepted } from "@flotilla/api-types";
import { checkReplicaAdd, NotFoundError, replicaConnection, replicaUrl } from "@flotilla/core";
import type { SshEndpoint } from "@flotilla/drivers";
import { CONTROL_PLANE_CLIENT, installControlPlane, removeControlPlane } from "@flotilla/provision";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { NodesRepository } from "../nodes/nodes.repository";
import { SecretKeys } from "../secrets/secret-keys";
import { MachineHost } from "./machine-host";
import type { MachineRow } from "./machines.repository";
import { MachinesService } from "./machines.service";

/** What the provision worker passes in for one replica operation. */
export interface ReplicaJob {
  machine: MachineRow;
  ssh: () => Promise<SshEndpoint>;
  signal: AbortSignal;
  progress: (step: string, message: string, percent: number) => void;
}

@Injectable()
export class ControlPlaneReplicasService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly nodes: NodesRepository,
    private readonly machines: MachinesService,
    private readonly host: MachineHost,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async list(): Promise<ControlPlaneReplicaView[]> {
    const rows = await this.prisma.controlPlaneReplica.findMany({
      include: { machine: { select: { name: true, node: { select: { id: true, hostname: true } } } } },
      orderBy: { createdAt: "asc" },
    });
    return rows.map((r) => ({
      machine: r.machine.name,
      node: r.machine.node?.hostname ?? null,
      apiUrl: r.apiUrl,
      agentApiUrl: r.agentApiUrl,
      state: r.state,
      message: r.message,
      updatedAt: r.updatedAt.toISOString(),
    }));
  }

  /** Where Postgres and Redis are for a machine; refuses loopback without an override (core). */
  private connections(): { databaseUrl: string; redisUrl: string } {
    const r = this.host.config.replicas;
    const redisHosts =
      this.config.redis.kind === "direct" ? [new URL(this.config.redis.url).hostname] : this.config.redis.sentinels.map((s) => s.host);
    return {
      databaseUrl: replicaConnection(
        "Postgres",
        { url: this.config.databaseUrl, hosts: this.config.database.hosts.map((h) => h.host) },
        r.databaseUrl,
        "FLOTILLA_REPLICA_DATABASE_URL",
      ),
      redisUrl: replicaConnection("Redis", { url: this.config.redisUrl, hosts: redisHosts }, r.redisUrl, "FLOTILLA_REPLICA_REDIS_URL"),
    };
  }

  private async machineOf(nodeRef: string) {
    const node = await this.nodes.find(nodeRef);
    const machine = node.machineId
      ? await this.prisma.machine.findUnique({ where: { id: node.machineId }, include: { controlPlaneReplica: true } })
      : null;
    return { node, machine };
  }

  /** Records the replica (installing) and queues its installation on the node's machine. */
  async add(nodeRef: string): Promise<OperationAccepted> {
    const { node, machine } = await this.machineOf(nodeRef);
    const bundle = this.host.config.replicas.bundle;
    const urls = this.connections();
    const { ip } = checkReplicaAdd({
      node: { hostname: node.hostname, role: node.role },
      machine: machine && { name: machine.name, state: machine.state, ip: machine.ip },
      existing: machine?.controlPlaneReplica ?? null,
      bundle: { path: bundle, present: existsSync(bundle) },
      ...urls,
    });
    const url = replicaUrl(ip, this.host.config.replicas.port);
    const m = machine!;
    const data = { apiUrl: url, agentApiUrl: url, state: "installing", message: null };
    await this.prisma.controlPlaneReplica.upsert({ where: { machineId: m.id }, create: { machineId: m.id, ...data }, update: data });
    try {
      return await this.machines.operate(m.name, "control-plane-add");
    } catch (e) {
      await this.prisma.controlPlaneReplica.deleteMany({ where: { machineId: m.id, state: "installing" } });
      throw e;
    }
  }

  /**
   * Queues the replica's removal (stop, delete its files, forget it). `force`: forget it even when
   * the machine cannot be reached to remove it (a machine that is gone or down for good).
   */
  async remove(nodeRef: string, force = false): Promise<OperationAccepted> {
    const { node, machine } = await this.machineOf(nodeRef);
    if (!machine?.controlPlaneReplica) throw new NotFoundError("control-plane replica on node", node.hostname);
    const before = machine.controlPlaneReplica.state;
    await this.prisma.controlPlaneReplica.update({ where: { machineId: machine.id }, data: { state: "removing" } });
    try {
      return await this.machines.operate(machine.name, "control-plane-rm", { force });
    } catch (e) {
      await this.prisma.controlPlaneReplica.update({ where: { machineId: machine.id }, data: { state: before } });
      throw e;
    }
  }

  /** The provision worker's half of `control-plane-add`. */
  async install(job: ReplicaJob): Promise<{ url: string; version: string }> {
    const row = await this.prisma.controlPlaneReplica.findUnique({ where: { machineId: job.machine.id } });
    if (!row) throw new NotFoundError("control-plane replica on machine", job.machine.name);
    try {
      const r = this.host.config.replicas;
      // The files every replica must share: created here on first use, as this process would.
      new SecretKeys(this.config.secretsKeyFile);
      const ca = await this.host.authority();
      const { version } = await installControlPlane({
        ssh: await job.ssh(),
        machineName: job.machine.name,
        signal: job.signal,
        progress: (p) => job.progress(p.step, p.message, p.percent),
        bundlePath: r.bundle,
        settings: {
          ...this.connections(),
          port: r.port,
          queuePrefix: this.config.queuePrefix,
          publicUrls: this.config.publicUrls,
          agentApiUrls: this.host.config.agentApiUrls,
          heartbeatMs: this.config.heartbeatMs,
        },
        secretsKey: await readFile(this.config.secretsKeyFile),
        caCert: ca.certPem,
        client: await this.host.controlPlaneClient(),
        clientName: CONTROL_PLANE_CLIENT,
        url: row.apiUrl,
        timeoutMs: r.timeoutMs,
      });
      await this.prisma.controlPlaneReplica.update({ where: { id: row.id }, data: { state: "running", message: `version ${version}` } });
      return { url: row.apiUrl, version };
    } catch (e) {
      await this.failed(job.machine.id, e);
      throw e;
    }
  }

  /** The provision worker's half of `control-plane-rm`; with `force`, a removal that fails is reported and the replica forgotten. */
  async uninstall(job: ReplicaJob, force = false): Promise<{ removed: true }> {
    try {
      await removeControlPlane({
        ssh: await job.ssh(),
        machineName: job.machine.name,
        // Forced: the machine is likely gone or down; trying is bounded, as the agent's revocation is.
        ...(force ? { signal: AbortSignal.any([job.signal, AbortSignal.timeout(30_000)]), sshTimeoutMs: 10_000 } : { signal: job.signal }),
        progress: (p) => job.progress(p.step, p.message, p.percent),
      });
    } catch (e) {
      if (!force) {
        await this.failed(job.machine.id, e);
        throw e;
      }
      job.progress("remove", `ignoring (--force): ${(e as Error).message}`, 90);
    }
    await this.prisma.controlPlaneReplica.deleteMany({ where: { machineId: job.machine.id } });
    return { removed: true };
  }

  /**
   * Before a machine is removed: a generic host outlives its machine, and a replica left running
   * there would keep the secrets key and serve the API. Best effort and bounded, as the agent's
   * revocation is; other drivers' hosts go with the machine (the row goes by cascade).
   */
  async removeFromSurvivingHost(job: ReplicaJob, driverName: unknown): Promise<void> {
    if (driverName !== "generic") return;
    if (!(await this.prisma.controlPlaneReplica.count({ where: { machineId: job.machine.id } }))) return;
    await this.uninstall(job, true).catch(() => undefined);
  }

  private async failed(machineId: string, e: unknown): Promise<void> {
    await this.prisma.controlPlaneReplica
      .updateMany({ where: { machineId }, data: { state: "failed", message: (e as Error).message } })
      .catch(() => undefined);
  }
}

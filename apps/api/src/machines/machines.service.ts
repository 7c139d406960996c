import { Injectable } from "@nestjs/common";
import type { MachineView, OperationAccepted } from "@flotilla/api-types";
import { ConflictError, InvalidError, UnavailableError } from "@flotilla/core";
import {
  drivers,
  driverNames,
  engineUrl,
  getDriver,
  keyFingerprint,
  publicKeyBlob,
  readPrivateKey,
  sshConnect,
  validateMachineName,
  type OptionSpec,
  type OptionValue,
} from "@flotilla/drivers";
import type { FlotillaEvent } from "../events/events.service";
import type { ProvisionJob } from "../queues/queue-names";
import { QueuesService } from "../queues/queues.service";
import type { MachineState } from "../generated/prisma/client";
import { ENGINE_OPTIONS, MachineHost, splitOptions } from "./machine-host";
import { MachinesRepository, type AgentInfo, type MachineRow } from "./machines.repository";

/** Operations run by the provision worker, and the state a machine shows while one runs. */
export const OPERATIONS = {
  create: "CREATING",
  start: "STARTING",
  stop: "STOPPING",
  restart: "STARTING",
  kill: "STOPPING",
  rm: "REMOVING",
  provision: "PROVISIONING",
  "regenerate-certs": "PROVISIONING",
  upgrade: "PROVISIONING",
  // A control-plane replica on the machine (ControlPlaneReplicasService); its agent is untouched.
  "control-plane-add": "PROVISIONING",
  "control-plane-rm": "PROVISIONING",
} as const satisfies Record<string, MachineState>;
export type Operation = keyof typeof OPERATIONS;

/** What the REST API returns for a machine. */
export function toView(m: MachineRow, agent?: AgentInfo): MachineView {
  return {
    id: m.id,
    name: m.name,
    driver: m.driver,
    state: m.state,
    stateReason: m.stateReason,
    ip: m.ip,
    url: m.ip ? engineUrl(m.ip) : null,
    sshUser: m.sshUser,
    sshPort: m.sshPort,
    agentVersion: m.agentVersion,
    sshHostKey: m.sshHostKey ? { key: m.sshHostKey, sha256: keyFingerprint(publicKeyBlob(m.sshHostKey)) } : null,
    ...(agent
      ? {
          agentJoinedAt: agent.joinedAt?.toISOString() ?? null,
          node: agent.node
            ? { ...agent.node, status: agent.node.status.toLowerCase(), lastHeartbeatAt: agent.node.lastHeartbeatAt?.toISOString() ?? null }
            : null,
        }
      : {}),
    options: (m.options ?? {}) as Record<string, unknown>,
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
  };
}

/** Where the key is pinned is the control plane's business, not the client's. */
function withoutPinFile<T extends { hostKeyPin?: unknown }>(ep: T): Omit<T, "hostKeyPin"> {
  const { hostKeyPin: _, ...rest } = ep;
  return rest;
}

const BUSY: MachineState[] = ["CREATING", "REMOVING"];

@Injectable()
export class MachinesService {
  constructor(
    private readonly repo: MachinesRepository,
    private readonly queues: QueuesService,
    private readonly host: MachineHost,
  ) {}

  /** Validates everything that can be checked without touching the world, stores, enqueues. */
  async create(body: { name: string; driver: string; options?: Record<string, OptionValue> }): Promise<OperationAccepted> {
    validateMachineName(body.name);
    const factory = getDriver(body.driver);
    const raw = body.options ?? {};
    const { driver } = splitOptions(raw);
    factory.parseOptions(driver);
    const options = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.replace(/^--/, ""), v]));
    const { machine, event } = await this.repo.create({ name: body.name, driver: body.driver, options });
    const jobId = await this.enqueueOrUndo({ machineId: machine.id, operation: "create", params: {} }, () =>
      this.repo.forget(machine.id, machine.name),
    );
    return { machine: toView(machine), jobId, eventId: event.id };
  }

  async list(): Promise<MachineView[]> {
    const rows = await this.repo.list();
    const agents = await this.repo.agentInfo(rows);
    return rows.map((m) => toView(m, agents.get(m.id)));
  }

  async get(name: string): Promise<MachineView> {
    const m = await this.repo.find(name);
    return { ...toView(m, (await this.repo.agentInfo([m])).get(m.id)), certificates: await this.host.certificates(m.name) };
  }

  /** Moves the machine to the operation's transitional state and enqueues the work. */
  async operate(name: string, operation: Exclude<Operation, "create">, params: Record<string, unknown> = {}): Promise<OperationAccepted> {
    const m = await this.repo.find(name);
    const force = params.force === true;
    if (BUSY.includes(m.state) && !(operation === "rm" && force)) {
      throw new ConflictError(
        `machine "${name}" is ${m.state.toLowerCase()}; wait for it to finish${operation === "rm" ? " or use --force" : ""}`,
        { state: m.state },
      );
    }
    if (operation !== "rm" && !m.ip && m.state === "ERROR" && ["provision", "regenerate-certs", "upgrade"].includes(operation)) {
      throw new ConflictError(
        `machine "${name}" has no IP (its create failed: ${m.stateReason ?? "unknown"}); remove it and create it again`,
      );
    }
    const { machine, event } = await this.repo.setState(m.id, OPERATIONS[operation], { action: "state", data: { operation } });
    const jobId = await this.enqueueOrUndo({ machineId: m.id, operation, params: { ...params, previousState: m.state } }, async () => {
      await this.repo.setState(m.id, m.state, { reason: m.stateReason, action: "state", data: { operation, undone: true } });
    });
    return { machine: toView(machine), jobId, eventId: event.id };
  }

  /**
   * Queues a machine operation. Unlike a service's desired state, an operation is work that only
   * a job carries out: if Redis cannot take the job, the row is put back as it was and the user
   * is told nothing changed, rather than leaving a machine "creating" that nothing will create.
   */
  private async enqueueOrUndo(job: ProvisionJob, undo: () => Promise<void>): Promise<string> {
    try {
      return await this.queues.enqueueProvision(job);
    } catch (e) {
      if (!(e instanceof UnavailableError && e.details.dependency === "redis")) throw e;
      await undo();
      throw new UnavailableError(
        "Redis is unavailable: nothing was changed (machine operations run as queued jobs); try again when it is back",
        {
          dependency: "redis",
        },
      );
    }
  }

  private requireIp(m: MachineRow): string {
    if (!m.ip) throw new ConflictError(`machine "${m.name}" has no IP yet (state ${m.state})`, { state: m.state });
    return m.ip;
  }

  /** What `eval $(ctl machine env NAME)` sets; ctl renders it for the user's shell. */
  async env(name: string): Promise<Record<string, string> & { certPath: string }> {
    const m = await this.repo.find(name);
    const ip = this.requireIp(m);
    await this.host.machineClientCert(m.name);
    const certPath = this.host.userCertDir(m.name);
    return {
      DOCKER_TLS_VERIFY: "1",
      DOCKER_HOST: engineUrl(ip),
      DOCKER_CERT_PATH: certPath,
      DOCKER_MACHINE_NAME: m.name,
      certPath,
    };
  }

  async ip(name: string): Promise<{ ip: string }> {
    return { ip: this.requireIp(await this.repo.find(name)) };
  }

  async url(name: string): Promise<{ url: string }> {
    return { url: engineUrl(this.requireIp(await this.repo.find(name))) };
  }

  /** The driver's live view (Running, Stopped, Unreachable, NotFound, ...) beside the stored state. */
  async status(name: string): Promise<{ name: string; status: string; state: MachineState }> {
    const m = await this.repo.find(name);
    const status = await this.driverOf(m).getState(AbortSignal.timeout(15_000));
    return { name: m.name, status, state: m.state };
  }

  /** The docker CLI flags for this machine, as `docker-machine config` prints them. */
  async config(name: string): Promise<{ host: string; certPath: string; flags: string[] }> {
    const env = await this.env(name);
    const dir = env.certPath;
    return {
      host: env.DOCKER_HOST,
      certPath: dir,
      flags: ["--tlsverify", `--tlscacert=${dir}/ca.pem`, `--tlscert=${dir}/cert.pem`, `--tlskey=${dir}/key.pem`, `-H=${env.DOCKER_HOST}`],
    };
  }

  /**
   * How to SSH into the machine (the key is in the machine store on the control plane's host),
   * with its pinned host key. The key is checked here first, so a changed one is refused with a
   * message naming the machine and both fingerprints (not only OpenSSH's warning); a machine
   * provisioned before keys were pinned has its key pinned now, on first use.
   */
  async ssh(name: string): Promise<{ host: string; port: number; user: string; keyPath: string; hostKey?: string }> {
    const m = await this.repo.find(name);
    this.requireIp(m);
    const driver = this.driverOf(m);
    const ep = await driver.getSSH(AbortSignal.timeout(15_000));
    const conn = await sshConnect({
      host: ep.host,
      port: ep.port,
      user: ep.user,
      privateKey: await readPrivateKey(ep.keyPath),
      machine: m.name,
      ...(ep.hostKeyPin ? { hostKeyPin: ep.hostKeyPin } : { hostKey: ep.hostKey }),
      signal: AbortSignal.timeout(15_000),
    });
    conn.close();
    return withoutPinFile(ep.hostKey ? ep : await driver.getSSH(AbortSignal.timeout(15_000)));
  }

  private driverOf(m: MachineRow) {
    return this.host.driver(m, this.repo.hostKeyPin(m, this.host.legacyHostKeyFile(m.name)));
  }

  /** Self-described drivers and their options, for `ctl machine create --help` and the console. */
  drivers(): { drivers: { name: string; description: string; options: readonly OptionSpec[] }[]; engineOptions: readonly OptionSpec[] } {
    return {
      drivers: driverNames().map((n) => ({ name: n, description: drivers[n].description, options: drivers[n].options })),
      engineOptions: ENGINE_OPTIONS as unknown as OptionSpec[],
    };
  }

  static badOperation(op: string): InvalidError {
    return new InvalidError(`unknown machine operation "${op}"`, { field: "operation" });
  }
}

export type { FlotillaEvent };

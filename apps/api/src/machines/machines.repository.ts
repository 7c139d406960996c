import { Injectable } from "@nestjs/common";
import { unlink } from "node:fs/promises";
import { ConflictError, NotFoundError } from "@flotilla/core";
import { readPinnedHostKey, type HostKeyPin } from "@flotilla/drivers";
import { PrismaService } from "../database/prisma.service";
import { EventsService, type FlotillaEvent } from "../events/events.service";
import type { Machine as MachineRow, MachineState, Prisma } from "../generated/prisma/client";

export type { MachineRow };

export interface AgentInfo {
  joinedAt: Date | null;
  node: { id: string; hostname: string; status: string; lastHeartbeatAt: Date | null } | null;
}

/** Database side of machines: every state change is written with its event in one transaction. */
@Injectable()
export class MachinesRepository {
  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
  ) {}

  async find(name: string): Promise<MachineRow> {
    const row = await this.prisma.machine.findUnique({ where: { name } });
    if (!row) throw new NotFoundError("machine", name);
    return row;
  }

  findById(id: string): Promise<MachineRow | null> {
    return this.prisma.machine.findUnique({ where: { id } });
  }

  list(): Promise<MachineRow[]> {
    return this.prisma.machine.findMany({ orderBy: { name: "asc" } });
  }

  /** Inserts the machine (CREATING) and its "created" event; 409 when the name is taken. */
  async create(data: {
    name: string;
    driver: string;
    options: Record<string, unknown>;
  }): Promise<{ machine: MachineRow; event: FlotillaEvent }> {
    try {
      const [machine, events] = await this.prisma.$transaction(async (tx) => {
        const m = await tx.machine.create({
          data: { name: data.name, driver: data.driver, options: data.options as Prisma.InputJsonValue, state: "CREATING" },
        });
        const ev = await this.events.record(tx, [
          { kind: "machine", subjectId: m.id, action: "created", data: { name: m.name, driver: m.driver } },
        ]);
        return [m, ev] as const;
      });
      await this.events.publish(events);
      return { machine, event: events[0] };
    } catch (e) {
      if ((e as { code?: string }).code === "P2002") throw new ConflictError(`machine "${data.name}" already exists`, { name: data.name });
      throw e;
    }
  }

  /** Moves a machine to `state` with an event; `expect` guards against racing transitions. */
  async setState(
    id: string,
    state: MachineState,
    extra: {
      reason?: string | null;
      ip?: string | null;
      sshUser?: string;
      sshPort?: number;
      agentVersion?: string;
      action?: string;
      data?: Record<string, unknown>;
    } = {},
  ): Promise<{ machine: MachineRow; event: FlotillaEvent }> {
    const [machine, events] = await this.prisma.$transaction(async (tx) => {
      const m = await tx.machine.update({
        where: { id },
        data: {
          state,
          stateReason: extra.reason === undefined ? null : extra.reason,
          ...(extra.ip !== undefined ? { ip: extra.ip } : {}),
          ...(extra.sshUser !== undefined ? { sshUser: extra.sshUser } : {}),
          ...(extra.sshPort !== undefined ? { sshPort: extra.sshPort } : {}),
          ...(extra.agentVersion !== undefined ? { agentVersion: extra.agentVersion } : {}),
        },
      });
      const ev = await this.events.record(tx, [
        {
          kind: "machine",
          subjectId: id,
          action: extra.action ?? "state",
          data: { name: m.name, state, ...(extra.reason ? { reason: extra.reason } : {}), ...(extra.data ?? {}) },
        },
      ]);
      return [m, ev] as const;
    });
    await this.events.publish(events);
    return { machine, event: events[0] };
  }

  /** Deletes the row with a "removed" event (the caller removes its node first). */
  async delete(id: string, name: string): Promise<void> {
    const events = await this.prisma.$transaction(async (tx) => {
      await tx.machine.deleteMany({ where: { id } });
      return this.events.record(tx, [{ kind: "machine", subjectId: id, action: "removed", data: { name } }]);
    });
    await this.events.publish(events);
  }

  /** The id of the machine's node: linked to it, or registered under its name and not linked to another. */
  async nodeOf(machine: Pick<MachineRow, "id" | "name">): Promise<string | undefined> {
    const node = await this.prisma.node.findFirst({
      where: { OR: [{ machineId: machine.id }, { hostname: machine.name, machineId: null }] },
      select: { id: true },
    });
    return node?.id;
  }

  /** Deletes a machine whose create never started (its job could not be queued), with a "removed" event. */
  async forget(id: string, name: string): Promise<void> {
    const events = await this.prisma.$transaction(async (tx) => {
      await tx.machine.deleteMany({ where: { id } });
      return this.events.record(tx, [{ kind: "machine", subjectId: id, action: "removed", data: { name, reason: "not queued" } }]);
    });
    await this.events.publish(events);
  }

  /**
   * A create refused before anything was made (its preCreateCheck failed): nothing is kept, as
   * docker-machine does. The "failed" event carries the reason for whoever follows the create
   * (ctl's exit message, the console's create form).
   */
  async discard(id: string, name: string, reason: string, data: Record<string, unknown>): Promise<void> {
    const events = await this.prisma.$transaction(async (tx) => {
      await tx.machine.deleteMany({ where: { id } });
      return this.events.record(tx, [
        { kind: "machine", subjectId: id, action: "failed", data: { name, state: "ERROR", reason, ...data } },
        { kind: "machine", subjectId: id, action: "removed", data: { name } },
      ]);
    });
    await this.events.publish(events);
  }

  /** Links the node its agent registered (by hostname = machine name) to the machine. */
  async linkNode(machine: MachineRow): Promise<void> {
    await this.prisma.node.updateMany({ where: { hostname: machine.name, machineId: null }, data: { machineId: machine.id } });
  }

  /** Links a node that registered under a machine's name (its agent's host name) to that machine. */
  async linkNodeByHostname(hostname: string): Promise<boolean> {
    const machine = await this.prisma.machine.findUnique({ where: { name: hostname } });
    if (!machine) return false;
    const { count } = await this.prisma.node.updateMany({ where: { hostname, machineId: null }, data: { machineId: machine.id } });
    return count > 0;
  }

  /** Per machine: its linked node, and when its agent last traded a join token. */
  async agentInfo(machines: Pick<MachineRow, "id" | "name">[]): Promise<Map<string, AgentInfo>> {
    const ids = machines.map((m) => m.id);
    const names = machines.map((m) => m.name);
    const [nodes, joins] = await Promise.all([
      this.prisma.node.findMany({
        where: { machineId: { in: ids } },
        select: { id: true, hostname: true, status: true, machineId: true, lastHeartbeatAt: true },
      }),
      this.prisma.joinToken.groupBy({
        by: ["machineName"],
        where: { machineName: { in: names }, usedAt: { not: null } },
        _max: { usedAt: true },
      }),
    ]);
    const joined = new Map(joins.map((j) => [j.machineName, j._max.usedAt]));
    const info = new Map<string, AgentInfo>();
    for (const m of machines) {
      const n = nodes.find((x) => x.machineId === m.id);
      info.set(m.id, {
        joinedAt: joined.get(m.name) ?? null,
        node: n ? { id: n.id, hostname: n.hostname, status: n.status, lastHeartbeatAt: n.lastHeartbeatAt } : null,
      });
    }
    return info;
  }

  /**
   * The machine's SSH host key pin, in its row: the first key pinned wins (a conditional update,
   * so two first connections racing agree). A key an older version pinned in the store directory
   * (`legacyFile`) is taken over into the row once, and the file removed.
   */
  hostKeyPin(machine: Pick<MachineRow, "id" | "name">, legacyFile: string): HostKeyPin {
    const current = async () =>
      (await this.prisma.machine.findUnique({ where: { id: machine.id }, select: { sshHostKey: true } }))?.sshHostKey ?? undefined;
    const pinFirst = async (key: string): Promise<string> => {
      await this.prisma.machine.updateMany({ where: { id: machine.id, sshHostKey: null }, data: { sshHostKey: key } });
      return (await current()) ?? key;
    };
    return {
      where: `machine ${machine.name}'s record`,
      pinFirst,
      read: async () => {
        const pinned = await current();
        if (pinned) return pinned;
        const legacy = await readPinnedHostKey(legacyFile);
        if (!legacy) return undefined;
        const now = await pinFirst(legacy);
        await unlink(legacyFile).catch(() => undefined);
        return now;
      },
    };
  }

  /** Marks the machine's agent as given its client allow list (and the run script turning it on). */
  async clientsWritten(id: string): Promise<void> {
    // The database's clock: no clock reads in the API's code (lint), and this is a record only.
    await this.prisma.$executeRaw`UPDATE "Machine" SET "clientsWrittenAt" = now() WHERE id = ${id}::uuid`;
  }

  /** READY machines whose agent was provisioned before it had a client allow list. */
  withoutClientList(): Promise<MachineRow[]> {
    return this.prisma.machine.findMany({ where: { state: "READY", clientsWrittenAt: null }, orderBy: { name: "asc" } });
  }

  async progress(id: string, data: { step: string; message: string; percent: number; operation: string }): Promise<void> {
    await this.events.emit({ kind: "machine", subjectId: id, action: "progress", data });
  }
}

// Database access for overlay networks and their addresses (IPAM's adapter): libs/core decides
// which subnet, VNI or address is free; this reads what is taken and writes the choice under a
// lock, so two creates or two allocations racing never get the same one (the unique indexes are
// the last word). Network creates serialize on one advisory lock; allocations on one network on
// its row's lock (FOR NO KEY UPDATE), which does not conflict with the FOR KEY SHARE a service's
// transaction holds on the networks it names (that only keeps `rm` out); locks on several
// networks are always taken in id order, so two transactions never wait on each other.
import { Injectable } from "@nestjs/common";
import {
  ConflictError,
  InvalidError,
  nextFreeAddress,
  NotFoundError,
  isTerminal,
  TASK_STATES,
  type NetworkAttachment,
  type ServiceSpec,
} from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import type { OverlayNetwork, Prisma } from "../generated/prisma/client";

type Tx = Prisma.TransactionClient;
/** A task in one of these states holds no address any more: the next allocation reclaims it. */
const ENDED_STATES: readonly string[] = TASK_STATES.filter(isTerminal);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A task's attachment as its container create call carries it. */
export interface TaskAttachment {
  networkId: string;
  network: string;
  ip: string;
  aliases: string[];
}

@Injectable()
export class NetworksRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** A network by id or by name; NotFoundError otherwise. */
  async find(ref: string, tx: Tx = this.prisma): Promise<OverlayNetwork> {
    const row = UUID.test(ref)
      ? ((await tx.overlayNetwork.findUnique({ where: { id: ref } })) ?? (await tx.overlayNetwork.findUnique({ where: { name: ref } })))
      : await tx.overlayNetwork.findUnique({ where: { name: ref } });
    if (!row) throw new NotFoundError("network", ref);
    return row;
  }

  /** The services whose spec names this network (by id), by name. */
  async servicesOn(tx: Tx, networkId: string): Promise<{ id: string; name: string }[]> {
    return tx.$queryRaw<{ id: string; name: string }[]>`
      SELECT id::text AS id, name FROM "Service"
      WHERE coalesce(spec->'networks', '[]'::jsonb) @> ${JSON.stringify([{ target: networkId }])}::jsonb ORDER BY name`;
  }

  /**
   * The spec's attachments with each target (a name or an id) replaced by the network's id, the
   * networks locked (FOR KEY SHARE) until the transaction ends so a concurrent rm waits for it.
   * InvalidError naming `networks[i].target` when one does not exist: nothing is created.
   */
  async resolve(tx: Tx, networks: readonly NetworkAttachment[]): Promise<NetworkAttachment[]> {
    const out: NetworkAttachment[] = [];
    for (const [i, n] of networks.entries()) {
      const rows = await tx.$queryRaw<{ id: string }[]>`
        SELECT id::text AS id FROM "OverlayNetwork"
        WHERE ${UUID.test(n.target)} AND id = ${UUID.test(n.target) ? n.target : "00000000-0000-0000-0000-000000000000"}::uuid
           OR name = ${n.target}
        ORDER BY (name = ${n.target}) LIMIT 1 FOR KEY SHARE`;
      if (!rows.length)
        throw new InvalidError(
          `network ${JSON.stringify(n.target)} does not exist (create it: ctl network create --driver overlay ${n.target})`,
          {
            field: `networks[${i}].target`,
            value: n.target,
          },
        );
      if (out.some((o) => o.target === rows[0].id))
        throw new InvalidError(`network ${n.target} is given twice`, { field: `networks[${i}].target`, value: n.target });
      out.push({ target: rows[0].id, aliases: n.aliases });
    }
    return out;
  }

  /** The VIPs of these services, with their networks' names, by service id. */
  async vipsOf(serviceIds: readonly string[]): Promise<Map<string, { networkId: string; network: string; addr: string }[]>> {
    const out = new Map<string, { networkId: string; network: string; addr: string }[]>();
    if (serviceIds.length === 0) return out;
    const rows = await this.prisma.sql.query<{ serviceId: string; networkId: string; network: string; addr: string }>(
      `SELECT a."serviceId"::text AS "serviceId", a."networkId"::text AS "networkId", n.name AS network, a.ip AS addr
       FROM "OverlayAddress" a JOIN "OverlayNetwork" n ON n.id = a."networkId"
       WHERE a."serviceId" = ANY($1::uuid[]) ORDER BY n.name`,
      [[...serviceIds]],
    );
    for (const { serviceId, ...vip } of rows) out.set(serviceId, [...(out.get(serviceId) ?? []), vip]);
    return out;
  }

  /**
   * The service's VIPs made to match its spec: one per network in vip mode, none in dnsrr; a
   * VIP on a network the service left is released. Call in the transaction that writes the spec.
   */
  async syncVips(tx: Tx, serviceId: string, spec: Pick<ServiceSpec, "networks" | "endpointMode">): Promise<void> {
    const wanted = spec.endpointMode === "vip" ? spec.networks.map((n) => n.target) : [];
    await tx.overlayAddress.deleteMany({ where: { serviceId, networkId: { notIn: wanted } } });
    const have = new Set((await tx.overlayAddress.findMany({ where: { serviceId }, select: { networkId: true } })).map((a) => a.networkId));
    for (const networkId of [...wanted].sort()) if (!have.has(networkId)) await this.allocate(tx, networkId, { serviceId });
  }

  /**
   * One address on the network for a service (VIP) or a task: the next free host address after
   * the last one given (see nextFreeAddress).
   * The network's row lock serializes allocations on it; addresses of tasks that have ended are
   * reclaimed first, so a finished task's address is free for the next one.
   */
  private async allocate(tx: Tx, networkId: string, owner: { serviceId: string } | { taskId: string }): Promise<string> {
    const [net] = await tx.$queryRaw<{ name: string; subnet: string; gateway: string; lastAddress: string | null }[]>`
      SELECT name, subnet, gateway, "lastAddress" FROM "OverlayNetwork" WHERE id = ${networkId}::uuid FOR NO KEY UPDATE`;
    if (!net) throw new NotFoundError("network", networkId);
    await tx.$executeRaw`
      DELETE FROM "OverlayAddress" a USING "Task" t
      WHERE a."networkId" = ${networkId}::uuid AND a."taskId" = t.id AND t.state::text = ANY(${ENDED_STATES}::text[])`;
    const used = await tx.overlayAddress.findMany({ where: { networkId }, select: { ip: true } });
    // Serial (after the last one given): a removed service's rows go at once while its containers
    // stop through their grace period still holding their addresses on the wire.
    const ip = nextFreeAddress(net.subnet, net.gateway, new Set(used.map((u) => u.ip)), net.lastAddress ?? undefined);
    if (!ip)
      throw new ConflictError(`network ${net.name} (${net.subnet}) has no free address left`, { field: "networks", network: net.name });
    await tx.overlayAddress.create({ data: { networkId, ip, ...owner } });
    await tx.overlayNetwork.update({ where: { id: networkId }, data: { lastAddress: ip } });
    return ip;
  }

  /**
   * The task's addresses on each network of its service, given out now where it has none yet
   * (dispatch calls this once the task is claimed, before its container is created). Returns
   * them with the network names and the DNS names the container answers to on each.
   */
  async attachTask(
    task: { id: string; serviceId: string },
    spec: Pick<ServiceSpec, "name" | "networks">,
  ): Promise<{ attachments: TaskAttachment[]; added: boolean }> {
    if (spec.networks.length === 0) return { attachments: [], added: false };
    return this.prisma.$transaction(async (tx) => {
      const have = new Map(
        (await tx.overlayAddress.findMany({ where: { taskId: task.id }, select: { networkId: true, ip: true } })).map((a) => [
          a.networkId,
          a.ip,
        ]),
      );
      let added = false;
      // In id order (see the top of this file); the answer keeps the spec's order.
      for (const id of spec.networks.map((n) => n.target).sort()) {
        if (have.has(id)) continue;
        have.set(id, await this.allocate(tx, id, { taskId: task.id }));
        added = true;
      }
      const names = new Map(
        (
          await tx.overlayNetwork.findMany({ where: { id: { in: spec.networks.map((n) => n.target) } }, select: { id: true, name: true } })
        ).map((r) => [r.id, r.name]),
      );
      const attachments = spec.networks.map((n) => {
        const network = names.get(n.target);
        if (!network) throw new Error(`network ${n.target} of service ${spec.name} no longer exists`);
        return { networkId: n.target, network, ip: have.get(n.target)!, aliases: [spec.name, ...n.aliases] };
      });
      return { attachments, added };
    });
  }
}

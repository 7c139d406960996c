// Overlay networks as users manage them: create (IPAM in one transaction under the IPAM lock),
// list, inspect, remove (refused while a service names the network). Attaching services and
// tasks is NetworksRepository's, called from the services' and dispatch's transactions.
import { Injectable } from "@nestjs/common";
import {
  chooseSubnet,
  ConflictError,
  nextVni,
  OVERLAY_DRIVER,
  validateNetworkName,
  InvalidError,
  ADDRESSED_TASK_STATES,
  NotSupportedError,
} from "@flotilla/core";
import type { NetworkCreateRequest, NetworkView } from "@flotilla/api-types";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import type { OverlayNetwork, Prisma } from "../generated/prisma/client";
import { TX_OPTIONS } from "../services/mapping";
import { NetworksRepository } from "./networks.repository";

type Tx = Prisma.TransactionClient;

@Injectable()
export class NetworksService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly repo: NetworksRepository,
    private readonly events: EventsService,
  ) {}

  async create(body: NetworkCreateRequest): Promise<NetworkView> {
    validateNetworkName(body.name);
    if (body.driver !== undefined && body.driver !== OVERLAY_DRIVER)
      throw new InvalidError(`driver ${JSON.stringify(body.driver)} is not supported: cluster networks use the overlay driver`, {
        field: "driver",
      });
    // The agents apply neither yet: refused by name rather than stored and ignored.
    for (const field of ["internal", "attachable"] as const)
      if (body[field]) throw new NotSupportedError(`${field} overlay networks are not supported yet`, { field });
    const { row, evs } = await this.prisma
      .$transaction(async (tx) => {
        // One create at a time picks a subnet and a VNI: two racing creates never both see them free.
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('flotilla:overlay-ipam'))`;
        if (await tx.overlayNetwork.findUnique({ where: { name: body.name } }))
          throw new ConflictError(`a network named "${body.name}" already exists`, { field: "name" });
        const existing = await tx.overlayNetwork.findMany({ select: { name: true, subnet: true, vni: true } });
        const { subnet, gateway } = chooseSubnet({ subnet: body.subnet, gateway: body.gateway }, existing);
        const row = await tx.overlayNetwork.create({
          data: {
            name: body.name,
            driver: OVERLAY_DRIVER,
            subnet,
            gateway,
            vni: nextVni(existing.map((e) => e.vni)),
            labels: body.labels ?? {},
            internal: body.internal ?? false,
            attachable: body.attachable ?? false,
          },
        });
        const evs = await this.events.record(tx, [
          { kind: "network", subjectId: row.id, action: "create", data: { name: row.name, subnet, vni: row.vni } },
        ]);
        return { row, evs };
      }, TX_OPTIONS)
      .catch((e: unknown) => {
        if ((e as { code?: string }).code === "P2002")
          throw new ConflictError(`a network named "${body.name}" already exists`, { field: "name" });
        throw e;
      });
    await this.events.publish(evs);
    return this.view(this.prisma, row);
  }

  async list(): Promise<NetworkView[]> {
    const rows = await this.prisma.overlayNetwork.findMany({ orderBy: { name: "asc" } });
    return Promise.all(rows.map((r) => this.view(this.prisma, r)));
  }

  async get(ref: string): Promise<NetworkView> {
    return this.view(this.prisma, await this.repo.find(ref));
  }

  /** Removes a network no service names (409 naming them otherwise); its addresses go with it. */
  async remove(ref: string): Promise<void> {
    const evs = await this.prisma.$transaction(async (tx) => {
      const row = await this.repo.find(ref, tx);
      // Services attaching to it hold its row FOR KEY SHARE until they commit: this waits for them.
      await tx.$queryRaw`SELECT id FROM "OverlayNetwork" WHERE id = ${row.id}::uuid FOR UPDATE`;
      const users = await this.repo.servicesOn(tx, row.id);
      if (users.length)
        throw new ConflictError(
          `network ${row.name} is in use by service${users.length > 1 ? "s" : ""} ${users.map((u) => u.name).join(", ")}`,
          {
            network: row.name,
            services: users.map((u) => u.name),
          },
        );
      await tx.overlayNetwork.delete({ where: { id: row.id } });
      return this.events.record(tx, [{ kind: "network", subjectId: row.id, action: "remove", data: { name: row.name } }]);
    }, TX_OPTIONS);
    await this.events.publish(evs);
  }

  private async view(tx: Tx, row: OverlayNetwork): Promise<NetworkView> {
    const services = await this.repo.servicesOn(tx, row.id);
    const vips = await tx.overlayAddress.findMany({
      where: { networkId: row.id, serviceId: { not: null } },
      select: { serviceId: true, ip: true },
    });
    const tasks = await tx.overlayAddress.count({
      where: { networkId: row.id, task: { state: { in: [...ADDRESSED_TASK_STATES] } } },
    });
    return {
      id: row.id,
      name: row.name,
      driver: OVERLAY_DRIVER,
      subnet: row.subnet,
      gateway: row.gateway,
      vni: row.vni,
      labels: row.labels as Record<string, string>,
      internal: row.internal,
      attachable: row.attachable,
      createdAt: row.createdAt.toISOString(),
      services: services.map((s) => ({ ...s, vip: vips.find((v) => v.serviceId === s.id)?.ip ?? null })),
      addressesInUse: vips.length + tasks,
    };
  }
}

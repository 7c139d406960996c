// One-time join tokens. Provisioning issues one per machine and writes it into the agent's
// environment; the agent trades it, once and before it expires, for its own API token (role
// `agent`: heartbeats for its machine only). So the long-lived credential is minted on the
// control plane at the moment the agent proves it holds the one-time secret, and a join token
// found later in a machine's files is worth nothing.
import { Inject, ForbiddenException, Injectable, UnauthorizedException } from "@nestjs/common";
import { CLOCK } from "../common/clock";
import type { Clock } from "@flotilla/core";
import { PrismaService } from "../database/prisma.service";
import { EventsService, type EventInput } from "../events/events.service";
import { hashToken, newJoinSecret, newTokenSecret } from "../auth/tokens";
import { agentTokenName } from "../auth/roles";

/** Long enough for a slow VM to boot and start its agent; short enough to be worthless soon after. */
export const JOIN_TOKEN_TTL_MS = 60 * 60_000;

export interface JoinResult {
  /** The agent's API token (role `agent`), returned once. */
  token: string;
  tokenName: string;
  machine: string;
}

@Injectable()
export class JoinService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /**
   * A new join token for the machine's agent. The machine's unused older ones stop working: only
   * the agent given the latest one (by the latest provisioning) may join.
   */
  async issue(machineName: string, ttlMs = JOIN_TOKEN_TTL_MS): Promise<{ token: string; expiresAt: Date }> {
    const token = newJoinSecret();
    const expiresAt = new Date(this.clock.now() + ttlMs);
    await this.prisma.$transaction(async (tx) => {
      await tx.joinToken.deleteMany({ where: { machineName, usedAt: null } });
      await tx.joinToken.create({ data: { machineName, hash: hashToken(token), expiresAt } });
    });
    return { token, expiresAt };
  }

  /** Forgets every join token of a removed machine. */
  async forget(machineName: string): Promise<void> {
    await this.prisma.joinToken.deleteMany({ where: { machineName } });
  }

  /**
   * Trades a join token for the machine's agent API token, in one transaction: the token is
   * checked, marked used (a concurrent second use loses the conditional update) and the agent's
   * previous API token, if any, is replaced.
   */
  async join(secret: string, hostname: string): Promise<JoinResult> {
    const now = new Date(this.clock.now());
    const apiToken = newTokenSecret();
    const { result, events } = await this.prisma.$transaction(async (tx) => {
      const row = await tx.joinToken.findUnique({ where: { hash: hashToken(secret) } });
      if (!row) throw new UnauthorizedException("join token is not valid: it is unknown or was replaced by a newer provisioning");
      if (row.usedAt)
        throw new UnauthorizedException(
          `join token was already used (at ${row.usedAt.toISOString()}); re-provision the machine for a new one`,
        );
      if (row.expiresAt <= now)
        throw new UnauthorizedException(`join token expired at ${row.expiresAt.toISOString()}; re-provision the machine for a new one`);
      if (hostname !== row.machineName) {
        throw new ForbiddenException(`join token was issued for machine "${row.machineName}", not "${hostname}"`);
      }
      const claimed = await tx.joinToken.updateMany({ where: { id: row.id, usedAt: null }, data: { usedAt: now } });
      if (claimed.count !== 1) throw new UnauthorizedException("join token was already used; re-provision the machine for a new one");

      const name = agentTokenName(row.machineName);
      const inputs: EventInput[] = [];
      const previous = await tx.apiToken.findUnique({ where: { name } });
      if (previous) {
        await tx.apiToken.delete({ where: { id: previous.id } });
        inputs.push({ kind: "token", subjectId: previous.id, action: "revoke", data: { name } });
      }
      const created = await tx.apiToken.create({ data: { name, hash: hashToken(apiToken), role: "agent" } });
      inputs.push({ kind: "token", subjectId: created.id, action: "create", data: { name, role: "agent" } });
      const machine = await tx.machine.findUnique({ where: { name: row.machineName } });
      if (machine) {
        // A step of the machine's progress, so `ctl machine create` shows it as it happens. The
        // agent joins while provisioning waits for its TLS port (85-100%), just before or after
        // the last step is reported, concurrently: 100 is the only percentage that never goes back.
        inputs.push({
          kind: "machine",
          subjectId: machine.id,
          action: "progress",
          data: { step: "agent joined", message: `the agent on ${hostname} joined the control plane`, percent: 100, name: machine.name },
        });
      }
      const events = await this.events.record(tx, inputs);
      return { result: { token: apiToken, tokenName: name, machine: row.machineName }, events };
    });
    await this.events.publish(events);
    return result;
  }
}

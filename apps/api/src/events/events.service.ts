import { Inject, Injectable, Logger, OnModuleDestroy } from "@nestjs/common";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { BehaviorSubject, Observable, Subject } from "rxjs";
import { PrismaService } from "../database/prisma.service";
import { RedisConnections } from "../database/redis";
import type { Prisma } from "../generated/prisma/client";
import { decodeEventMessage, type FlotillaEvent } from "./event-message";

export type { FlotillaEvent };

export interface EventInput {
  kind: string;
  subjectId?: string | null;
  action: string;
  data?: Record<string, unknown>;
}

type Tx = Prisma.TransactionClient;

// Events per published message: large enough that a scale to thousands is a handful of
// messages, small enough that no message grows past a few hundred kilobytes.
const PUBLISH_BATCH = 500;

/**
 * Every state change is an Event row, written in the same transaction as the change, then
 * published on Redis so every API replica can stream it, whichever process made the change.
 */
@Injectable()
export class EventsService implements OnModuleDestroy {
  private readonly logger = new Logger("events");
  private readonly live = new Subject<FlotillaEvent>();
  private subscribed = false;
  /** Whether the subscriber is subscribed on a connection that is up (see streamLive). */
  private readonly delivering = new BehaviorSubject<boolean>(false);
  private readonly publishedHere = new Subject<readonly FlotillaEvent[]>();

  /** One channel per control plane (its queue prefix), so planes sharing a Redis stay apart. */
  private readonly channel: string;

  constructor(
    private readonly prisma: PrismaService,
    private readonly redis: RedisConnections,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.channel = `${config.queuePrefix}:events`;
  }

  /** Writes events inside `tx`; call `publish()` with the result after the commit. */
  async record(tx: Tx, inputs: EventInput[]): Promise<FlotillaEvent[]> {
    const rows = await Promise.all(
      inputs.map((e) =>
        tx.event.create({
          data: { kind: e.kind, subjectId: e.subjectId ?? null, action: e.action, data: (e.data ?? {}) as Prisma.InputJsonValue },
        }),
      ),
    );
    return rows.map(toEvent);
  }

  /**
   * Publishes events in order. A batch (a scale writes thousands) goes as a few messages, each a
   * JSON array, rather than one message per event: every process of the plane receives and
   * parses every message.
   */
  async publish(events: readonly FlotillaEvent[]): Promise<void> {
    // This process's own listeners first, synchronously: before the caller answers its client,
    // whatever this process keeps about the change is already retired (read-your-writes).
    if (events.length) this.publishedHere.next(events);
    for (let i = 0; i < events.length; i += PUBLISH_BATCH) {
      const chunk = events.slice(i, i + PUBLISH_BATCH);
      const message = JSON.stringify(chunk.length === 1 ? chunk[0] : chunk);
      await this.redis.client.publish(this.channel, message).catch((err: Error) => this.logger.warn(`publish failed: ${err.message}`));
    }
  }

  /** Records and publishes events that are not part of a larger transaction. */
  async emit(...inputs: EventInput[]): Promise<FlotillaEvent[]> {
    const events = await this.prisma.$transaction((tx) => this.record(tx, inputs));
    await this.publish(events);
    return events;
  }

  async since(afterId: bigint, kinds: string[] | undefined, limit = 500): Promise<FlotillaEvent[]> {
    const rows = await this.prisma.event.findMany({
      where: { id: { gt: afterId }, ...(kinds?.length ? { kind: { in: kinds } } : {}) },
      orderBy: { id: "asc" },
      take: limit,
    });
    return rows.map(toEvent);
  }

  async latestId(): Promise<bigint> {
    const last = await this.prisma.event.findFirst({ orderBy: { id: "desc" }, select: { id: true } });
    return last?.id ?? 0n;
  }

  /** The live stream of events published by any process of this control plane. */
  stream(): Observable<FlotillaEvent> {
    this.subscribe();
    return this.live.asObservable();
  }

  /** Events this process publishes, as it publishes them (after their commit, before Redis). */
  published(): Observable<readonly FlotillaEvent[]> {
    return this.publishedHere.asObservable();
  }

  /**
   * Whether stream() is delivering: true once the subscription is confirmed on a connection,
   * false from the moment that connection drops until the subscription is confirmed again on
   * the next. Messages published meanwhile are lost (Redis pub/sub keeps nothing), so a
   * listener that keeps state from the stream reads it again when this turns true.
   */
  streamLive(): Observable<boolean> {
    this.subscribe();
    return this.delivering.asObservable();
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    // Named, so an operator (and the tests) can tell it in CLIENT LIST.
    const sub = this.redis.open({ connectionName: `${this.channel}:subscriber` });
    let connection = 0;
    const confirm = () => {
      const mine = connection;
      // ioredis subscribes again by itself after a reconnect, but says nothing when that is
      // done; a SUBSCRIBE of our own is answered only once the channel is subscribed.
      sub.subscribe(this.channel).then(
        () => {
          if (mine === connection && !this.delivering.value) this.delivering.next(true);
        },
        (err: Error) => this.logger.warn(`subscribe to ${this.channel} failed: ${err.message}`),
      );
    };
    sub.on("ready", confirm);
    sub.on("close", () => {
      connection++;
      if (this.delivering.value) this.delivering.next(false);
    });
    if (sub.status === "ready") confirm();
    sub.on("message", (_channel: string, message: string) => {
      const decoded = decodeEventMessage(message);
      if ("error" in decoded) {
        this.logger.warn(`ignored a message on ${this.channel}: ${decoded.error} (${message.length} bytes)`);
        return;
      }
      for (const e of decoded.events) this.live.next(e);
    });
  }

  /** Ends every open event stream, so HTTP can drain on shutdown. */
  endStreams(): void {
    this.live.complete();
  }

  onModuleDestroy(): void {
    this.live.complete();
    this.delivering.complete();
    this.publishedHere.complete();
  }
}

function toEvent(r: { id: bigint; at: Date; kind: string; subjectId: string | null; action: string; data: unknown }): FlotillaEvent {
  return {
    id: r.id.toString(),
    at: r.at.toISOString(),
    kind: r.kind,
    subjectId: r.subjectId,
    action: r.action,
    data: (r.data ?? {}) as Record<string, unknown>,
  };
}

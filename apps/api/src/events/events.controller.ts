import { Controller, Query, Sse, type MessageEvent } from "@nestjs/common";
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from "@nestjs/swagger";
import { InvalidError } from "@flotilla/core";
import { Observable } from "rxjs";
import { EventsService, type FlotillaEvent } from "./events.service";

@ApiTags("events")
@ApiBearerAuth()
@Controller("api/v1/events")
export class EventsController {
  constructor(private readonly events: EventsService) {}

  @Sse()
  @ApiOperation({ summary: "Live event stream (Server-Sent Events). Each event's `id` can resume the stream with `since`." })
  @ApiQuery({ name: "since", required: false, description: "Replay events after this id first" })
  @ApiQuery({ name: "kind", required: false, description: "Comma-separated kinds to keep (machine,node,service,task,...)" })
  @ApiOkResponse({ description: "text/event-stream of events `{id, at, kind, subjectId, action, data}`" })
  stream(@Query("since") since?: string, @Query("kind") kind?: string): Observable<MessageEvent> {
    if (since !== undefined && !/^\d+$/.test(since))
      throw new InvalidError("invalid since: must be an event id (a whole number)", { field: "since" });
    const kinds = kind
      ? kind
          .split(",")
          .map((k) => k.trim())
          .filter(Boolean)
      : undefined;
    const keep = (e: FlotillaEvent) => !kinds || kinds.includes(e.kind);
    return new Observable<MessageEvent>((subscriber) => {
      const fromBacklog = new Set<string>();
      const send = (e: FlotillaEvent) => subscriber.next({ id: e.id, type: e.kind, data: e });
      // Listen before reading the backlog so nothing falls between the two; hold live events
      // until the backlog is out, then drop those the backlog already sent.
      let held: FlotillaEvent[] | null = [];
      const live = this.events.stream().subscribe({
        next: (e) => {
          if (!keep(e)) return;
          if (held) held.push(e);
          else send(e);
        },
        complete: () => subscriber.complete(),
      });
      (async () => {
        if (since !== undefined) {
          for (const e of await this.events.since(BigInt(since), kinds, 10_000)) {
            fromBacklog.add(e.id);
            send(e);
          }
        }
        const pending = held ?? [];
        held = null;
        for (const e of pending) if (!fromBacklog.has(e.id)) send(e);
      })().catch((err: unknown) => subscriber.error(err));
      return () => live.unsubscribe();
    });
  }
}

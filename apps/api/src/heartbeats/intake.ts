// This process's heartbeat intake, as the health probe reports it (libs/core intakeKeepsUp):
// when each beat arrived and when its node's row was touched. A process that falls behind —
// beats queued for the database pool, a blocked event loop — stops proving that it takes
// heartbeats, so the node monitor never declares nodes down for the control plane's lateness.
import { Inject, Injectable, OnModuleDestroy } from "@nestjs/common";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { intakeKeepsUp, type Clock } from "@flotilla/core";
import { CLOCK } from "../common/clock";

@Injectable()
export class HeartbeatIntake implements OnModuleDestroy {
  /** Beats not yet recorded, by ticket; insertion order is arrival order, so the first is the oldest. */
  private readonly waiting = new Map<number, number>();
  private next = 0;
  private longestWaitMs = 0;
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });

  constructor(@Inject(CLOCK) private readonly clock: Clock) {
    this.loop.enable();
  }

  /** A beat arrived: returns its ticket. */
  arrived(at: number): number {
    const ticket = this.next++;
    this.waiting.set(ticket, at);
    return ticket;
  }

  /** Its node's row is touched (or the beat failed: `recorded` false, the agent tries again). */
  done(ticket: number, recorded: boolean): void {
    const at = this.waiting.get(ticket);
    if (at === undefined) return;
    this.waiting.delete(ticket);
    if (recorded) this.longestWaitMs = Math.max(this.longestWaitMs, this.clock.now() - at);
  }

  /** Whether beats were taken promptly since the last call (each call starts a new interval). */
  keepsUp(periodMs: number): boolean {
    const now = this.clock.now();
    const oldest = this.waiting.values().next();
    const ok = intakeKeepsUp({
      now,
      periodMs,
      oldestWaitingSince: oldest.done ? undefined : oldest.value,
      longestWaitMs: this.longestWaitMs,
      // The histogram's max is in ns, and never below its resolution (20 ms).
      loopDelayMs: this.loop.max / 1e6,
    });
    this.longestWaitMs = 0;
    this.loop.reset();
    return ok;
  }

  onModuleDestroy(): void {
    this.loop.disable();
  }
}

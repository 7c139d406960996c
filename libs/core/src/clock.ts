// The one clock of the control plane. Decisions take `now` as an argument; adapters get it from
// a Clock they are given, so tests can hold time still or move it on (issue 18).

/** Where time comes from. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Wall-clock time. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to: for tests of time-dependent adapters. */
export class ManualClock implements Clock {
  constructor(private ms: number) {}

  now(): number {
    return this.ms;
  }

  /** Moves time forward by `ms`. */
  advance(ms: number): void {
    this.ms += ms;
  }

  set(ms: number): void {
    this.ms = ms;
  }
}

import type { Clock } from '../../src/runtime/clock.js';

/** A clock that moves only when a test says so; its timers fire as it passes them. */
export class ManualClock implements Clock {
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  constructor(private ms = Date.parse('2026-12-01T10:00:00.000Z')) {}

  now(): number {
    return this.ms;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.ms + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers armed and not fired yet. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time on by `ms`, firing every timer that falls due, in time order. */
  advance(ms: number): void {
    const until = this.ms + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.ms = Math.max(this.ms, due[1].at);
      due[1].fn();
    }
    this.ms = until;
  }
}

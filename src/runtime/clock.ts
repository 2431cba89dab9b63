/**
 * Time as the runtime sees it. Injected everywhere so tests decide what "now"
 * is and when timers fire, instead of sleeping.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** setTimeout fires at once for delays past 2^31-1 ms; longer ones are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

let lastMs = Number.NaN;
let lastIso = '';

/**
 * ISO 8601 text of an epoch ms. A burst of follow-ups asks for the same
 * millisecond many times (every row and event carries it), so the last one
 * is kept.
 */
export function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/** A `Retry-After` longer than this is taken as an hour: a job must not wait for days. */
export const MAX_FLOOR_MS = 3_600_000;

/**
 * Backoff for follow-up attempts: exponential in the attempt number, capped,
 * with "equal jitter" (half fixed, half random) so that jobs failing together
 * on a shared outage do not retry together, yet no retry comes sooner than
 * half its nominal delay.
 *
 * @param attempt - the attempt that just failed, counted from 1
 * @param baseMs - nominal delay after the first failure
 * @param maxMs - cap on the nominal delay
 * @param random - a number in [0, 1); injected so tests are deterministic
 * @param floorMs - a lower bound the server asked for (`Retry-After`), if any;
 *   honoured even past `maxMs` (the server knows when it can answer), up to an hour
 */
export function retryDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: number,
  floorMs = 0,
): number {
  const exponent = Math.max(0, attempt - 1);
  // 2 ** 1024 is Infinity; the cap keeps the figure finite long before that.
  const nominal = Math.min(maxMs, baseMs * 2 ** Math.min(exponent, 52));
  const half = nominal / 2;
  const jittered = Math.round(half + half * clamp01(random));
  return Math.max(jittered, Math.min(floorMs, MAX_FLOOR_MS));
}

function clamp01(value: number): number {
  if (!Number.isFinite(value) || value < 0) return 0;
  return value >= 1 ? 0.999999 : value;
}

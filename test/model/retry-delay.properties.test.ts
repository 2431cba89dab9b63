import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_FLOOR_MS, retryDelayMs } from '../../src/machines/retry-delay.js';

// Whole milliseconds, as the CLI and the job context hold them.
const attempt = fc.integer({ min: 1, max: 80 });
const baseMs = fc.integer({ min: 1, max: 60_000 });
const maxMs = fc.integer({ min: 1, max: 3_600_000 });
const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
/** Any number at all: a random source gone wrong must not break the bounds. */
const anyRandom = fc.oneof(random, fc.double(), fc.constantFrom(Number.NaN, -1, 1, 2, Infinity));
const floorMs = fc.integer({ min: 0, max: 7_200_000 });

/** SPEC §2: grows exponentially from the base, capped. */
const nominal = (n: number, base: number, max: number) => Math.min(max, base * 2 ** (n - 1));

describe('retryDelayMs (properties)', () => {
  it('stays within [nominal / 2, nominal] without a floor', () => {
    fc.assert(
      fc.property(attempt, baseMs, maxMs, anyRandom, (n, base, max, r) => {
        const delay = retryDelayMs(n, base, max, r);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(nominal(n, base, max) / 2);
        expect(delay).toBeLessThanOrEqual(nominal(n, base, max));
      }),
    );
  });

  it('never exceeds the cap unless the server asked for longer, and then at most an hour', () => {
    fc.assert(
      fc.property(attempt, baseMs, maxMs, anyRandom, floorMs, (n, base, max, r, floor) => {
        expect(retryDelayMs(n, base, max, r)).toBeLessThanOrEqual(max);
        expect(retryDelayMs(n, base, max, r, floor)).toBeLessThanOrEqual(
          Math.max(max, Math.min(floor, MAX_FLOOR_MS)),
        );
      }),
    );
  });

  it('does not shrink from one attempt to the next for the same draw', () => {
    fc.assert(
      fc.property(attempt, baseMs, maxMs, random, (n, base, max, r) => {
        expect(retryDelayMs(n + 1, base, max, r)).toBeGreaterThanOrEqual(
          retryDelayMs(n, base, max, r),
        );
      }),
    );
  });

  it('waits at least as long as the server asked, up to an hour', () => {
    fc.assert(
      fc.property(attempt, baseMs, maxMs, random, floorMs, (n, base, max, r, floor) => {
        const delay = retryDelayMs(n, base, max, r, floor);
        expect(delay).toBeGreaterThanOrEqual(Math.min(floor, MAX_FLOOR_MS));
        expect(delay).toBeGreaterThanOrEqual(retryDelayMs(n, base, max, r));
      }),
    );
  });

  it('spreads jobs that fail together over the second half of the nominal delay', () => {
    fc.assert(
      fc.property(attempt, fc.integer({ min: 1_000, max: 60_000 }), (n, base) => {
        const max = 10 * base;
        const low = retryDelayMs(n, base, max, 0);
        const high = retryDelayMs(n, base, max, 1 - Number.EPSILON);
        expect(low).toBe(Math.round(nominal(n, base, max) / 2));
        expect(high - low).toBeGreaterThanOrEqual(nominal(n, base, max) / 2 - 1);
      }),
    );
  });
});

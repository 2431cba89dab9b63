import { describe, expect, it } from 'vitest';
import { iso } from '../../src/runtime/clock.js';

describe('iso', () => {
  it('gives the ISO text of each millisecond, asked once or many times in a row', () => {
    const base = Date.UTC(2026, 11, 1, 21, 0, 0, 0);
    expect(iso(base)).toBe('2026-12-01T21:00:00.000Z');
    expect(iso(base)).toBe('2026-12-01T21:00:00.000Z');
    expect(iso(base + 1)).toBe('2026-12-01T21:00:00.001Z');
    expect(iso(base)).toBe('2026-12-01T21:00:00.000Z');
    expect(iso(0)).toBe('1970-01-01T00:00:00.000Z');
  });

  it('throws for a time that is not a date, every time', () => {
    expect(() => iso(Number.NaN)).toThrow(RangeError);
    expect(() => iso(Number.NaN)).toThrow(RangeError);
  });
});

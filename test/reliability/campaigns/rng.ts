/** A small seeded random source (mulberry32), so that a campaign can be replayed from its seed. */
export interface Rng {
  readonly seed: number;
  /** In [0, 1). */
  next(): number;
  /** A whole number in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function rng(seed: number = Date.now() % 2 ** 31): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new Error('pick from an empty list');
      return item;
    },
  };
}

/** The seed of a campaign: `BATON_CAMPAIGN_SEED` when set (to replay a failure), else random. */
export function campaignSeed(): number {
  const fixed = Number(process.env['BATON_CAMPAIGN_SEED']);
  return Number.isSafeInteger(fixed) && fixed > 0 ? fixed : 1 + Math.floor(Math.random() * 2 ** 30);
}

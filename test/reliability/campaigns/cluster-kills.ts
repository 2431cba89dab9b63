/**
 * When and how the cluster campaign pulls the plug. Each kill event is one of:
 * a SIGKILL of one process at a random instant under load, a SIGTERM of one,
 * a SIGKILL of two at once, or a kill of a process that has just been
 * restarted (at a random instant from its spawn to a little past its usual
 * listening line: before it listens, while it takes sessions over, or just
 * after). Every killed process is restarted on its own data dir once it has
 * exited.
 */

import type { Rng } from './rng.js';
import type { Generation, ServeSlots } from './cluster-procs.js';

export type KillKind = 'kill' | 'term' | 'double' | 'afterRestart';

export interface KillRecord {
  event: number;
  kind: KillKind;
  slot: number;
  signal: 'SIGKILL' | 'SIGTERM';
  /** ms from the spawn of the killed process to the signal. */
  afterSpawnMs: number;
  beforeListening: boolean;
  /** What the kill was aimed at: the caller of a request on the wire, its session's owner, or nothing. */
  aimed: 'caller' | 'owner' | null;
  epochMs: number;
}

interface Request {
  gen: Generation;
  sessionId: string | null;
  crossed: boolean;
}

/** Where the requests on the wire are, to aim kills at them. */
export interface Aim {
  inflight(): Iterable<Request>;
  /** Sets (or, with null, clears) the listener called as each request leaves. */
  onSent(listener: ((request: Request) => void) | null): void;
  /** The slot of the process that owns the session now, or null. */
  ownerSlot(sessionId: string): Promise<number | null>;
}

export interface KillPace {
  /** Pause before a kill at a random instant, ms. */
  minGapMs: number;
  maxGapMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The first four events are one of each kind, whatever the dice say, so that every form has them. */
export function chooseKind(r: Rng, event: number): KillKind {
  const forced: KillKind[] = ['kill', 'afterRestart', 'double', 'term'];
  const roll = r.next();
  const kind = forced[event];
  if (kind) return kind;
  if (roll < 0.5) return 'kill';
  if (roll < 0.65) return 'term';
  if (roll < 0.8) return 'double';
  return 'afterRestart';
}

/**
 * Runs one kill event; resolves once its processes have exited and been
 * restarted (spawned, not yet listening), with the slots it restarted.
 */
export async function killEvent(
  slots: ServeSlots,
  r: Rng,
  asked: KillKind,
  event: number,
  restartedLast: readonly number[],
  pace: KillPace,
  aim: Aim,
): Promise<{ records: KillRecord[]; restarted: number[] }> {
  const count = slots.current.length;
  // Nothing was restarted by the last event (its processes had exited on their own): a plain kill.
  const kind = asked === 'afterRestart' && restartedLast.length === 0 ? 'kill' : asked;
  let targets: number[];
  let signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL';
  let aimed: KillRecord['aimed'] = null;
  if (kind === 'afterRestart') {
    const slot = r.pick(restartedLast);
    targets = [slot];
    if (r.chance(0.25)) signal = 'SIGTERM';
    const spawnedAt = slots.current[slot]?.proc.spawnedAt ?? Date.now();
    await sleep(spawnedAt + r.int(0, slots.typicalStartupMs + 600) - Date.now());
  } else {
    // Kills at random instants land under full load: every process listens first.
    await slots.allListening(60_000).catch(() => undefined);
    await sleep(r.int(pace.minGapMs, pace.maxGapMs));
    let first = r.int(0, count - 1);
    if (r.chance(0.8)) {
      const target = await aimAt(aim, r);
      if (target) ({ slot: first, aimed } = target);
    }
    targets = [first];
    if (kind === 'double') targets.push((first + r.int(1, count - 1)) % count);
    if (kind === 'term') signal = 'SIGTERM';
  }
  const records: KillRecord[] = [];
  for (const slot of targets) {
    const gen = slots.current[slot];
    if (!gen || gen.exited) continue;
    records.push({
      event,
      kind,
      slot,
      signal,
      afterSpawnMs: Date.now() - gen.proc.spawnedAt,
      beforeListening: gen.proc.url === null,
      aimed: slot === targets[0] ? aimed : null,
      epochMs: Date.now(),
    });
  }
  for (const request of aim.inflight()) request.crossed = true;
  await Promise.all(records.map((k) => slots.signal(k.slot, signal)));
  // Some restarts come at once, some a moment later: both are what an operator does.
  await Promise.all(
    records.map(async (k) => {
      await sleep(r.chance(0.5) ? 0 : r.int(20, 300));
      slots.start(k.slot);
    }),
  );
  return { records, restarted: records.map((k) => k.slot) };
}

/**
 * Waits (up to 1.5 s) for the next request to leave, then picks its caller
 * or its session's owner, a few ms later: when the owner is picked, the kill
 * lands about when it runs the request as a forwarded command, between
 * storing its effect and marking the command done. Null when none left.
 */
async function aimAt(
  aim: Aim,
  r: Rng,
): Promise<{ slot: number; aimed: 'caller' | 'owner' } | null> {
  const request = await new Promise<Request | null>((resolve) => {
    const timer = setTimeout(() => {
      aim.onSent(null);
      resolve(null);
    }, 1500);
    aim.onSent((sent) => {
      if (sent.gen.signalled || sent.gen.exited) return;
      clearTimeout(timer);
      aim.onSent(null);
      resolve(sent);
    });
  });
  if (!request) return null;
  if (request.sessionId !== null && r.chance(0.6)) {
    const owner = await aim.ownerSlot(request.sessionId);
    if (owner !== null) {
      await sleep(r.int(0, 20));
      return { slot: owner, aimed: 'owner' };
    }
  }
  await sleep(r.int(0, 15));
  return { slot: request.gen.slot, aimed: 'caller' };
}

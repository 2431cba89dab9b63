/**
 * The work of the crash campaign, planned up front from a seed: sessions,
 * jobs (process and external) and messages (plain live turns and `bg` turns
 * that start a job), each with a unique text so that the driver can tell,
 * after a kill, whether a request whose answer it never got was stored.
 */

import type { Rng } from './rng.js';

/**
 * Where an item stands with the driver. `unknown`: sent, no answer (the
 * server died); `failed`: answered with an unexpected error and given up
 * (recorded, and the campaign fails).
 */
export type ItemState = 'todo' | 'inflight' | 'unknown' | 'done' | 'failed';

export interface SessionItem {
  kind: 'session';
  title: string;
  state: ItemState;
  id: string | null;
}

export interface JobItem {
  kind: 'job';
  session: number;
  body: { command: string } | { external: true; name: string };
  state: ItemState;
  id: string | null;
  /** External jobs: completed by the driver, not before this epoch. */
  completeFrom: number;
  completed: ItemState;
}

export interface MessageItem {
  kind: 'message';
  session: number;
  content: string;
  state: ItemState;
}

export type WorkItem = JobItem | MessageItem;

export interface CrashPlan {
  sessions: SessionItem[];
  /** Jobs and messages in the order the driver sends them. */
  work: WorkItem[];
}

/** Commands that run from a few ms to about a second and a half, so some outlive a kill. */
function command(r: Rng, key: string): string {
  if (r.chance(0.8)) return `sleep 0.0${r.int(0, 9)}; echo x-${key}`;
  return `sleep ${r.int(0, 1)}.${r.int(0, 9)}; echo x-${key}`;
}

/**
 * Plans `jobs` jobs over `sessions` sessions (half process, half external),
 * two plain messages per session and a `bg` message (a job started by the
 * agent) for one session in five.
 */
export function planCrash(
  r: Rng,
  size: { sessions: number; jobs: number; kills: number },
): CrashPlan {
  const sessions: SessionItem[] = Array.from({ length: size.sessions }, (_, i) => ({
    kind: 'session',
    title: `crash-s${i}`,
    state: 'todo',
    id: null,
  }));
  const work: WorkItem[] = [];
  for (let j = 0; j < size.jobs; j++) {
    const session = j % size.sessions;
    const key = `j${j}`;
    const external = r.chance(0.5);
    work.push({
      kind: 'job',
      session,
      body: external ? { external: true, name: `ext-${key}` } : { command: command(r, key) },
      state: 'todo',
      id: null,
      completeFrom: 0,
      completed: external ? 'todo' : 'done',
    });
  }
  for (let s = 0; s < size.sessions; s++) {
    for (let m = 0; m < 2; m++) {
      work.push({ kind: 'message', session: s, content: `hello m${s}-${m}`, state: 'todo' });
    }
    if (s % 5 === 0) {
      const content = `bg sleep 0.0${r.int(0, 9)}; echo bg-${s}`;
      work.push({ kind: 'message', session: s, content, state: 'todo' });
    }
  }
  // Shuffled, so that jobs, turns and completions of a session mix.
  for (let i = work.length - 1; i > 0; i--) {
    const k = r.int(0, i);
    const a = work[i];
    const b = work[k];
    if (a && b) {
      work[i] = b;
      work[k] = a;
    }
  }
  return { sessions, work };
}

/** The key an item is found by after an unknown outcome: a job's command or name. */
export function jobKey(body: JobItem['body']): string {
  return 'command' in body ? body.command : body.name;
}

/**
 * The work of the cluster campaign, planned up front from a seed: sessions
 * of two owners, jobs (process and external) and messages (plain live turns
 * and `bg` turns that start a job). Every title, command, name and message
 * text is unique, so that a request whose answer never came can be looked up
 * in the store by it.
 */

import type { Rng } from './rng.js';

/** The two owners: a feed frame of one on the other's client is a leak between owners. */
export const OWNERS = [
  { name: 'alice', token: 'cluster-campaign-alice-0123456789' },
  { name: 'bob', token: 'cluster-campaign-bob-0123456789ab' },
] as const;

export type OwnerName = (typeof OWNERS)[number]['name'];

/**
 * Where an item stands with the driver. `unknown`: sent, and no answer came
 * (the process died, or answered 503): it may or may not have happened, and
 * is looked up once nothing can make it happen any more; `failed`: answered
 * with something no request of this campaign should get (recorded: the
 * campaign fails).
 */
export type ItemState = 'todo' | 'inflight' | 'unknown' | 'done' | 'failed';

export interface SessionItem {
  kind: 'session';
  owner: OwnerName;
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
  /** External jobs: completed by the driver from this kill event on. */
  completeFrom: number;
  completed: ItemState;
  /** Completions sent: a `409 job_finished` is an earlier one landing only when there was one. */
  completeTries: number;
}

export interface MessageItem {
  kind: 'message';
  session: number;
  content: string;
  state: ItemState;
}

export type WorkItem = JobItem | MessageItem;

export interface ClusterPlan {
  sessions: SessionItem[];
  /** Jobs and messages in the order the driver sends them. */
  work: WorkItem[];
}

export interface ClusterSize {
  sessions: number;
  jobs: number;
}

/** Commands that run from a few ms to about a second and a half, so that some outlive a kill. */
function command(r: Rng, key: string): string {
  if (r.chance(0.8)) return `sleep 0.0${r.int(0, 9)}; echo x-${key}`;
  return `sleep ${r.int(0, 1)}.${r.int(0, 9)}; echo x-${key}`;
}

/**
 * Plans `jobs` jobs over `sessions` sessions (owners alternate; half the
 * jobs process jobs, half external), two plain messages per session and a
 * `bg` message (a job started by the agent) for one session in four.
 */
export function planCluster(r: Rng, size: ClusterSize): ClusterPlan {
  const sessions: SessionItem[] = Array.from({ length: size.sessions }, (_, i) => ({
    kind: 'session',
    owner: OWNERS[i % OWNERS.length]!.name,
    title: `cluster-s${i}`,
    state: 'todo',
    id: null,
  }));
  const work: WorkItem[] = [];
  for (let j = 0; j < size.jobs; j++) {
    const key = `j${j}`;
    const external = r.chance(0.5);
    work.push({
      kind: 'job',
      session: j % size.sessions,
      body: external ? { external: true, name: `ext-${key}` } : { command: command(r, key) },
      state: 'todo',
      id: null,
      completeFrom: 0,
      completed: external ? 'todo' : 'done',
      completeTries: 0,
    });
  }
  for (let s = 0; s < size.sessions; s++) {
    for (let m = 0; m < 2; m++) {
      work.push({ kind: 'message', session: s, content: `hello m${s}-${m}`, state: 'todo' });
    }
    if (s % 4 === 0) {
      const content = `bg sleep 0.0${r.int(0, 9)}; echo bg-${s}`;
      work.push({ kind: 'message', session: s, content, state: 'todo' });
    }
  }
  // Shuffled, so that the jobs, turns and completions of a session mix.
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

/** The key a job is found by after an unknown outcome: its command or its name. */
export function jobKey(body: JobItem['body']): string {
  return 'command' in body ? body.command : body.name;
}

/**
 * Campaign 3, races: random interleavings of user messages, job starts,
 * completions, cancels, retries, session deletes and restarts against the
 * running runtime (in process, SQLite, a jittery offline agent), with a
 * WebSocket client on the feed that resumes with `since` after each restart.
 * See races-check.ts for the invariants.
 */

import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { LockRecord } from '../../../src/runtime/session-locks.js';
import { TokenAuth } from '../../../src/transport/auth.js';
import { buildApp } from '../../../src/transport/http.js';
import { startTestBaton, type TestBaton } from '../../support/baton.js';
import { FeedClient } from '../../transport/helpers.js';
import { JitteryAgent, type RaceAction } from './races-actions.js';
import { rng, type Rng } from './rng.js';

export const OWNER = 'alice';
const TOKEN = 'races-token-0123456789';

/** Codes an action may get in a race (the thing it names is gone, finished, or not failed). */
const RACE_CODES = new Set([
  'not_found',
  'session_deleted',
  'job_finished',
  'job_not_failed',
  'job_not_external',
  'job_not_running',
]);
/** Codes an action may get while its runtime shuts down for a restart. */
const SHUTDOWN_CODES = new Set(['shutting_down', 'store_unavailable']);

export interface Instance {
  n: number;
  t: TestBaton;
  app: FastifyInstance;
  feed: FeedClient;
  closing: boolean;
}

export interface RaceRun {
  dir: string;
  instances: Instance[];
  /** Every lock record, tagged with the instance that made it. */
  locks: (LockRecord & { instance: number; sessionId: string })[];
  errors: string[];
  sessions: string[];
  jobs: string[];
  externals: string[];
  current: Instance;
  /** How the agent fails in this run, and the actions that landed (did not get an error), by kind. */
  failureRate: number;
  landed: Record<string, number>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function codeOf(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? Reflect.get(error, 'code') : undefined;
  return typeof code === 'string' ? code : String(error);
}

/** Starts a runtime on the run's data dir, an app on port 0, and a feed client resuming at `since`. */
async function startInstance(
  run: Omit<RaceRun, 'current'>,
  r: Rng,
  since: number,
): Promise<Instance> {
  const n = run.instances.length;
  const t = await startTestBaton({
    dir: run.dir,
    agent: new JitteryAgent(r, run.failureRate),
    policy: { maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 60, agentTimeoutS: 5 },
    onLockRecord: (sessionId, record) => run.locks.push({ ...record, instance: n, sessionId }),
  });
  const auth = new TokenAuth([{ owner: OWNER, token: TOKEN }]);
  const app = await buildApp({ baton: t.baton, auth, logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const feed = new FeedClient(`ws://127.0.0.1:${port}/v1/events?token=${TOKEN}&since=${since}`);
  await feed.opened;
  const instance: Instance = { n, t, app, feed, closing: false };
  run.instances.push(instance);
  return instance;
}

async function stopInstance(instance: Instance, keep: boolean): Promise<void> {
  instance.closing = true;
  await instance.app.close();
  await instance.t.close({ keep });
}

/** Runs one action on the current instance; a promise that never rejects. */
function act(run: RaceRun, action: RaceAction, r: Rng): Promise<void> {
  const instance = run.current;
  const baton = instance.t.baton;
  const session =
    run.sessions[('session' in action ? action.session : 0) % run.sessions.length] ?? '';
  // Counted from the newest: recent jobs are the ones still on their way.
  const pick = (ids: string[]) =>
    ids[ids.length - 1 - (('job' in action ? action.job : 0) % Math.max(1, ids.length))] ??
    'j_none';
  const job = pick(run.jobs);
  const work = async (): Promise<void> => {
    switch (action.kind) {
      case 'message':
        await baton.sendMessage(OWNER, session, action.text);
        return;
      case 'job': {
        const body = action.external ? { external: true as const } : { command: action.command };
        const id = (await baton.startJob(OWNER, session, body)).id;
        run.jobs.push(id);
        if (action.external) run.externals.push(id);
        return;
      }
      case 'complete': {
        const output = 'done';
        await baton.completeJob(OWNER, pick(run.externals), { exitCode: action.exitCode, output });
        return;
      }
      case 'cancel':
        await baton.cancelJob(OWNER, job);
        return;
      case 'retry': {
        // A failed job when there is one: that is what a retry re-drives.
        const failed = await instance.t.store.listJobs({ owner: OWNER, state: 'failed' });
        await baton.retryJob(OWNER, failed.length > 0 ? pick(failed.map((j) => j.id)) : job);
        return;
      }
      case 'delete':
        await baton.deleteSession(OWNER, session);
        return;
      case 'session':
        run.sessions.push((await baton.createSession(OWNER, {})).id);
        return;
      case 'restart': {
        await stopInstance(instance, true);
        // As a real client does: resume from the last seq it saw before the connection closed.
        await instance.feed.closed;
        const since = Math.max(0, ...feedSeqs(run));
        run.current = await startInstance(run, r, since);
        return;
      }
      case 'pause':
        await sleep(action.ms);
        return;
    }
  };
  return work().then(
    () => {
      run.landed[action.kind] = (run.landed[action.kind] ?? 0) + 1;
    },
    (error: unknown) => {
      const code = codeOf(error);
      if (RACE_CODES.has(code) || (instance.closing && SHUTDOWN_CODES.has(code))) return;
      run.errors.push(`${action.kind}: ${code} ${error instanceof Error ? error.message : ''}`);
    },
  );
}

/** Plays the actions (restarts always awaited, others awaited when `wait`), then lets everything end. */
export async function playRace(actions: RaceAction[], seed: number): Promise<RaceRun> {
  const r = rng(seed);
  const base: Omit<RaceRun, 'current'> = {
    dir: mkdtempSync(join(tmpdir(), 'baton-races-')),
    instances: [],
    locks: [],
    errors: [],
    sessions: [],
    jobs: [],
    externals: [],
    failureRate: r.pick([0.05, 0.25, 0.6]),
    landed: {},
  };
  const run: RaceRun = { ...base, current: await startInstance(base, r, 0) };
  for (let i = 0; i < 2; i++)
    run.sessions.push((await run.current.t.baton.createSession(OWNER, {})).id);
  const pending: Promise<void>[] = [];
  for (const action of actions) {
    const done = act(run, action, r);
    if (action.wait || action.kind === 'restart') await done;
    else pending.push(done);
  }
  await Promise.all(pending);
  await settle(run);
  return run;
}

/** Completes the external jobs left running and waits until every job is final and every lock idle. */
async function settle(run: RaceRun): Promise<void> {
  const { t } = run.current;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const open = await t.store.listJobs({ owner: OWNER, unfinished: true });
    for (const job of open) {
      if (job.external && job.state === 'running') {
        await t.baton.completeJob(OWNER, job.id, { exitCode: 0 }).catch(() => undefined);
      }
    }
    const busy = [];
    for (const id of run.sessions) {
      const session = await t.store.getSession(id);
      if (session && (await t.baton.getSession(OWNER, id)).lock?.lock !== 'idle') busy.push(id);
    }
    const unfinished = open.filter((j) => j.state !== 'failed');
    if (unfinished.length === 0 && busy.length === 0) break;
    if (Date.now() > deadline) {
      run.errors.push(
        `not settled: ${unfinished.map((j) => `${j.id} ${j.state} (${j.why})`).join('; ')}; busy ${busy.join(', ')}`,
      );
      break;
    }
    await sleep(20);
  }
  // The lock turns idle in memory one write before its event is stored.
  await t.baton.settled();
  // The feed client has caught up once it has the store's last seq.
  const last = await t.store.lastSeq(OWNER);
  const caughtUp = Date.now() + 5000;
  while (Math.max(0, ...feedSeqs(run)) < last && Date.now() < caughtUp) await sleep(10);
}

/** Seqs the feed clients received, over every instance, in arrival order. */
export function feedSeqs(run: Pick<RaceRun, 'instances'>): number[] {
  return run.instances.flatMap((instance) => instance.feed.seqs());
}

/** Closes the last instance and removes the data dir (and every job process under it). */
export async function endRace(run: RaceRun): Promise<void> {
  await stopInstance(run.current, false);
}

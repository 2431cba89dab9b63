import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { iso } from '../../src/runtime/clock.js';
import { ManualClock } from '../support/manual-clock.js';
import { BatonError } from '../../src/runtime/errors.js';
import { Retention, type RetentionOptions } from '../../src/runtime/retention.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import type { NewEvent } from '../../src/runtime/store/store.js';
import { jobRow, messageRow, sessionRow, type NewJob } from '../store/fixtures.js';
import { waitFor } from '../support/wait.js';

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 25, 12);

const ago = (days: number) => iso(START - days * DAY);

describe('Retention', () => {
  let dataDir: string;
  let store: SqliteStore;
  let clock: ManualClock;
  let retention: Retention | undefined;

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'baton-retention-'));
    store = new SqliteStore({ path: join(dataDir, 'baton.db') });
    await store.init();
    clock = new ManualClock(START);
    await store.commit({ sessions: [sessionRow('alice', 's_1')] });
  });

  afterEach(async () => {
    await retention?.close();
    retention = undefined;
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const make = (extra: Partial<RetentionOptions> = {}) => {
    retention = new Retention({ store, clock, dataDir, retainMs: 7 * DAY, ...extra });
    return retention;
  };

  /** Stores the job and gives it a directory with an output log. */
  async function jobWithDir(id: string, extra: Partial<NewJob>): Promise<string> {
    await store.commit({
      jobs: [{ row: jobRow('alice', 's_1', id, extra), expectedVersion: null }],
    });
    const dir = join(dataDir, 'jobs', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'output.log'), `output of ${id}\n`);
    return dir;
  }

  const ended = (state: string, at: string): Partial<NewJob> => ({
    state,
    createdAt: at,
    finishedAt: at,
    history: [
      { state: 'running', at },
      { state, at },
    ],
  });

  const event = (at: string, type = 'job.state'): NewEvent => ({
    owner: 'alice',
    at,
    type,
    data: {},
  });

  it('removes the directories of jobs that ended before the retention, and nothing else', async () => {
    const gone = [
      await jobWithDir('j_followed', ended('followedUp', ago(8))),
      await jobWithDir('j_failed', ended('failed', ago(30))),
      await jobWithDir('j_cancelled', ended('cancelled', ago(7.01))),
      await jobWithDir('j_skipped', ended('skipped', ago(9))),
    ];
    const kept = [
      await jobWithDir('j_recent', ended('followedUp', ago(6))),
      // Its process finished long ago, but the follow-up came late: it ended 2 days ago.
      await jobWithDir('j_late', {
        ...ended('followedUp', ago(10)),
        followedUpAt: ago(2),
        history: [
          { state: 'running', at: ago(10) },
          { state: 'followedUp', at: ago(2) },
        ],
      }),
      // Not final, however old: a restart re-adopts a running process from its directory.
      await jobWithDir('j_running', {
        createdAt: ago(40),
        history: [{ state: 'running', at: ago(40) }],
      }),
      await jobWithDir('j_retrying', { ...ended('retrying', ago(40)), followedUpAt: null }),
      await jobWithDir('j_waiting', ended('awaitingIdleSession', ago(40))),
    ];
    // No row in the store: nothing says it ended.
    const orphan = join(dataDir, 'jobs', 'j_orphan');
    mkdirSync(orphan);
    // Not a name Baton gives, and a link that leads out of the jobs directory.
    const stranger = join(dataDir, 'jobs', 'notes');
    mkdirSync(stranger);
    const outside = join(dataDir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep.txt'), 'keep');
    await store.commit({
      jobs: [
        {
          row: jobRow('alice', 's_1', 'j_link', ended('followedUp', ago(20))),
          expectedVersion: null,
        },
      ],
    });
    symlinkSync(outside, join(dataDir, 'jobs', 'j_link'));
    const message = messageRow('alice', 's_1', 'm_1', { createdAt: ago(30) });
    await store.commit({ messages: [message] });

    const pass = await make().runOnce();

    expect(pass.jobDirs).toBe(gone.length);
    for (const dir of gone) expect(existsSync(dir), dir).toBe(false);
    for (const dir of [...kept, orphan, stranger, join(outside, 'keep.txt')]) {
      expect(existsSync(dir), dir).toBe(true);
    }
    // Rows and messages stay; the capped output is still read from the row.
    expect((await store.getJob('j_followed'))?.state).toBe('followedUp');
    expect(await store.listMessages('s_1')).toEqual([message]);
  });

  it('deletes old feed events in bounded chunks and keeps each owner’s newest', async () => {
    await store.commit({
      events: [
        ...Array.from({ length: 10 }, (_, i) => event(ago(20 - i))),
        event(ago(3)),
        event(ago(1)),
      ],
    });
    const prune = vi.spyOn(store, 'pruneEvents');

    const pass = await make({ chunk: 3 }).runOnce();

    expect(pass.events).toBe(10);
    // 3 + 3 + 3 + 1: the call that deletes fewer than a chunk is the last.
    expect(prune.mock.calls).toEqual(Array(4).fill([ago(7), 3]));
    expect((await store.readEvents('alice', 0, 100)).map((e) => e.seq)).toEqual([11, 12]);
    expect(await store.firstSeq('alice')).toBe(11);
    const next = await store.commit({ events: [event(ago(0))] });
    expect(next.events[0]?.seq).toBe(13);
  });

  it('runs a first pass shortly after start, then one every interval, on the injected clock', async () => {
    const prune = vi.spyOn(store, 'pruneEvents');
    const r = make({ firstPassMs: 60_000, intervalMs: 3_600_000 });
    r.start();
    r.start();
    expect(clock.pending).toBe(1);

    clock.advance(59_999);
    expect(prune).not.toHaveBeenCalled();
    clock.advance(1);
    expect(prune).toHaveBeenCalledTimes(1);
    r.start();
    expect(clock.pending).toBe(0);
    // While a pass runs, runOnce gives that pass; the next one is armed once it is done, once.
    await r.runOnce();
    await new Promise((resolve) => setImmediate(resolve));
    expect(prune).toHaveBeenCalledTimes(1);
    expect(clock.pending).toBe(1);

    await store.commit({ events: [event(ago(8)), event(ago(8))] });
    clock.advance(3_600_000);
    expect(prune).toHaveBeenCalledTimes(2);
    expect(prune).toHaveBeenLastCalledWith(iso(clock.now() - 7 * DAY), 2000);
    await waitFor(() => clock.pending === 1, { what: 'the third pass to be armed' });
    // Both were stored 8 days before: all but the newest is gone.
    expect((await store.readEvents('alice', 0, 100)).map((e) => e.seq)).toEqual([2]);
  });

  it('keeps everything with retainMs 0: no timer, and a pass removes nothing', async () => {
    const dir = await jobWithDir('j_old', ended('followedUp', ago(400)));
    await store.commit({ events: [event(ago(400)), event(ago(400))] });
    const r = make({ retainMs: 0 });

    r.start();
    expect(r.enabled).toBe(false);
    expect(clock.pending).toBe(0);
    expect(await r.runOnce()).toEqual({ events: 0, jobDirs: 0 });
    expect(existsSync(dir)).toBe(true);
    expect(await store.firstSeq('alice')).toBe(1);
  });

  it('logs a failed pass and runs again at the next interval', async () => {
    const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
    const failure = new Error('disk on fire');
    vi.spyOn(store, 'pruneEvents').mockRejectedValueOnce(failure);
    await store.commit({ events: [event(ago(9)), event(ago(8)), event(ago(0))] });
    const r = make({ firstPassMs: 10, intervalMs: 1000, logger });
    r.start();

    clock.advance(10);
    await waitFor(() => clock.pending === 1, { what: 'the pass after the failure to be armed' });
    expect(logger.warn).toHaveBeenCalledWith({ err: failure }, 'retention pass failed');

    clock.advance(1000);
    await waitFor(() => logger.info.mock.calls.length > 0, { what: 'the second pass' });
    expect(logger.info).toHaveBeenCalledWith({ events: 2, jobDirs: 0 }, 'retention pruned');
  });

  it('closes twice, clears its timer and waits for the pass in progress', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const real = store.pruneEvents.bind(store);
    vi.spyOn(store, 'pruneEvents').mockImplementation(async (before, limit) => {
      await gate;
      return real(before, limit);
    });
    await store.commit({ events: [event(ago(9)), event(ago(0))] });
    const r = make();
    r.start();
    const pass = r.runOnce();
    expect(r.runOnce()).toBe(pass);

    let closed = false;
    const closing = r.close().then(() => (closed = true));
    expect(clock.pending).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(await pass).toEqual({ events: 1, jobDirs: 0 });
    await expect(r.close()).resolves.toBeUndefined();

    const refused = await r.runOnce().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BatonError);
    expect((refused as BatonError).code).toBe('shutting_down');
    r.start();
    expect(clock.pending).toBe(0);
  });

  it('refuses a retention, interval or chunk that is not a whole number in range', () => {
    for (const bad of [
      { retainMs: -1 },
      { retainMs: 1.5 },
      { retainMs: Number.NaN },
      { intervalMs: 0 },
      { firstPassMs: -5 },
      { chunk: 0 },
    ]) {
      const err = (() => {
        try {
          make(bad);
        } catch (error) {
          return error;
        }
        return null;
      })();
      expect(err, JSON.stringify(bad)).toBeInstanceOf(BatonError);
      expect((err as BatonError).code).toBe('invalid_request');
    }
    retention = undefined;
  });
});

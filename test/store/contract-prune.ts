import { describe, expect, it } from 'vitest';
import { BatonError } from '../../src/runtime/errors.js';
import type { Store } from '../../src/runtime/store/store.js';
import { at, eventOf, failure, jobRow, messageRow, namespace, sessionRow } from './fixtures.js';

/**
 * A time in 2001, long before the events of every other contract test (in
 * 2026): pruning before `OLD_ENOUGH` can only reach events these tests made,
 * also on a PostgreSQL schema shared by the whole suite.
 */
const old = (minute: number, year = 2001) =>
  new Date(Date.UTC(year, 0, 1, 0, minute)).toISOString();
const OLD_ENOUGH = new Date(Date.UTC(2001, 1, 1)).toISOString();
/** Older still, for the test that counts what one call deletes: no other test's event is this old. */
const OLDEST_ENOUGH = new Date(Date.UTC(1990, 1, 1)).toISOString();

/**
 * The contract of `pruneEvents` and `firstSeq`, registered inside
 * `storeContract`'s suite; `store` returns the store of the running test.
 */
export function pruneContract(store: () => Store): void {
  /** Prunes in chunks of `limit` until a call deletes fewer, as the retention does. */
  async function pruneAll(before: string, limit = 1000): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await store().pruneEvents(before, limit);
      total += deleted;
      if (deleted < limit) return total;
    }
  }

  const seqsOf = async (owner: string, since = 0) =>
    (await store().readEvents(owner, since, 1000)).map((e) => e.seq);

  describe('pruning events', () => {
    it('deletes old events oldest first, keeps messages and jobs, and numbers new events on', async () => {
      const { owner, otherOwner, id } = namespace();
      const sessionId = id('session');
      const message = messageRow(owner, sessionId, id('m'));
      const job = jobRow(owner, sessionId, id('j'), { state: 'followedUp' });
      await store().commit({
        sessions: [sessionRow(owner, sessionId)],
        messages: [message],
        jobs: [{ row: job, expectedVersion: null }],
        events: [1, 2, 3, 4, 5].map((m) => eventOf(owner, `old${m}`, { at: old(m) })),
      });
      await store().commit({
        events: [
          eventOf(otherOwner, 'b1', { at: old(1) }),
          eventOf(owner, 'young6'),
          eventOf(owner, 'young7'),
        ],
      });

      expect(await pruneAll(OLD_ENOUGH)).toBeGreaterThanOrEqual(5);

      expect(await seqsOf(owner)).toEqual([6, 7]);
      expect(await store().firstSeq(owner)).toBe(6);
      expect(await store().lastSeq(owner)).toBe(7);
      // The other owner's only event is its newest: kept, though it is old.
      expect(await seqsOf(otherOwner)).toEqual([1]);
      expect(await store().listMessages(sessionId)).toEqual([message]);
      expect(await store().getJob(job.id)).toEqual({ ...job, version: 1 });

      const next = await store().commit({
        events: [eventOf(owner, 'young8'), eventOf(otherOwner, 'b2')],
      });
      expect(next.events.map((e) => e.seq)).toEqual([8, 2]);
      expect(await seqsOf(owner, 5)).toEqual([6, 7, 8]);
      expect(await pruneAll(OLD_ENOUGH)).toBeGreaterThanOrEqual(1);
      expect(await seqsOf(otherOwner)).toEqual([2]);
    });

    it('deletes at most limit events per call, and fewer than limit only when none is left', async () => {
      const { owner } = namespace();
      const events = Array.from({ length: 10 }, (_, m) =>
        eventOf(owner, `e${m}`, { at: old(m, 1990) }),
      );
      await store().commit({ events: [...events, eventOf(owner, 'young')] });

      expect(await store().pruneEvents(OLDEST_ENOUGH, 4)).toBe(4);
      expect(await store().firstSeq(owner)).toBe(5);
      expect(await store().pruneEvents(OLDEST_ENOUGH, 4)).toBe(4);
      expect(await store().pruneEvents(OLDEST_ENOUGH, 4)).toBe(2);
      expect(await store().pruneEvents(OLDEST_ENOUGH, 4)).toBe(0);
      expect(await seqsOf(owner)).toEqual([11]);
      expect(await store().firstSeq(owner)).toBe(11);
    });

    it('stops at the first event that is not old enough, so what is kept has no hole', async () => {
      const { owner } = namespace();
      await store().commit({
        events: [
          eventOf(owner, 'old1', { at: old(1) }),
          eventOf(owner, 'old2', { at: old(2) }),
          // Stored with a later clock (another host's, say) than the events after it.
          eventOf(owner, 'young3', { at: at(3) }),
          eventOf(owner, 'old4', { at: old(4) }),
          eventOf(owner, 'old5', { at: old(5) }),
          eventOf(owner, 'young6'),
        ],
      });

      await pruneAll(OLD_ENOUGH);

      expect(await seqsOf(owner)).toEqual([3, 4, 5, 6]);
      expect(await store().firstSeq(owner)).toBe(3);
    });

    it('keeps events at exactly the cut-off time and after it', async () => {
      const { owner } = namespace();
      await store().commit({
        events: [
          eventOf(owner, 'before', { at: old(9) }),
          eventOf(owner, 'at', { at: old(10) }),
          eventOf(owner, 'after', { at: old(11) }),
        ],
      });

      await pruneAll(old(10));

      expect(await seqsOf(owner)).toEqual([2, 3]);
    });

    it('gives firstSeq 1 to an owner without events and to one never pruned', async () => {
      const { owner, otherOwner } = namespace();
      expect(await store().firstSeq(owner)).toBe(1);
      await store().commit({ events: [eventOf(otherOwner, 'a'), eventOf(otherOwner, 'b')] });
      expect(await store().firstSeq(otherOwner)).toBe(1);
    });

    it('refuses a limit that is not a positive whole number and a time not in ISO form', async () => {
      const { owner } = namespace();
      await store().commit({
        events: [eventOf(owner, 'a', { at: old(1) }), eventOf(owner, 'b', { at: old(2) })],
      });
      const calls: [string, number][] = [
        [OLD_ENOUGH, 0],
        [OLD_ENOUGH, -1],
        [OLD_ENOUGH, 1.5],
        [OLD_ENOUGH, Number.NaN],
        ['2001-02-01', 10],
        ['2001-02-01T00:00:00Z', 10],
        ['yesterday', 10],
        ['2001-13-01T00:00:00.000Z', 10],
      ];
      for (const [before, limit] of calls) {
        const err = await failure(store().pruneEvents(before, limit));
        expect(err, `${before} ${limit}`).toBeInstanceOf(BatonError);
        expect((err as BatonError).code).toBe('invalid_request');
      }
      expect(await seqsOf(owner)).toEqual([1, 2]);
    });
  });
}

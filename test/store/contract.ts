import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DuplicateFollowUpError,
  FencedError,
  StoreConflictError,
  StoreWriteError,
} from '../../src/runtime/store/store.js';
import type { Batch, CommitResult, Store } from '../../src/runtime/store/store.js';
import { pruneContract } from './contract-prune.js';
import { at, eventOf, failure, jobRow, messageRow, namespace, sessionRow } from './fixtures.js';

/**
 * Registers the tests every {@link Store} backend must pass.
 *
 * @param name - shown in the `describe` title, e.g. `'SqliteStore (file)'`.
 * @param make - returns a new store that has not been initialised yet; the suite
 *   calls `init()` before each test and `close()` after it. Stores may share one
 *   database: every test uses its own owners and ids.
 */
export function storeContract(name: string, make: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await make();
      await store.init();
    });

    afterEach(async () => {
      await store.close();
    });

    /** Commits a session and returns the namespace it lives in. */
    async function withSession() {
      const ns = namespace();
      const sessionId = ns.id('session');
      await store.commit({ sessions: [sessionRow(ns.owner, sessionId)] });
      return { ...ns, sessionId };
    }

    describe('sessions', () => {
      it('round-trips a session with a system prompt and one without', async () => {
        const ns = namespace();
        const withPrompt = sessionRow(ns.owner, ns.id('s', 1), {
          title: 'Transcribe «interview» ✓',
          systemPrompt: 'You are terse.\nAnswer in French.',
          createdAt: at(5),
        });
        const withoutPrompt = sessionRow(ns.owner, ns.id('s', 2), { title: '', createdAt: at(6) });
        await store.commit({ sessions: [withPrompt, withoutPrompt] });

        expect(await store.getSession(withPrompt.id)).toEqual(withPrompt);
        expect(await store.getSession(withoutPrompt.id)).toEqual(withoutPrompt);
      });

      it('returns null for an unknown session', async () => {
        expect(await store.getSession(namespace().id('missing'))).toBeNull();
      });

      it("lists only the owner's sessions, oldest first", async () => {
        const ns = namespace();
        const late = sessionRow(ns.owner, ns.id('s', 'late'), { createdAt: at(9) });
        const early = sessionRow(ns.owner, ns.id('s', 'early'), { createdAt: at(1) });
        const foreign = sessionRow(ns.otherOwner, ns.id('s', 'foreign'));
        await store.commit({ sessions: [late, early, foreign] });

        expect(await store.listSessions(ns.owner)).toEqual([early, late]);
        expect(await store.listSessions(ns.otherOwner)).toEqual([foreign]);
      });

      it('hides a soft-deleted session from getSession and listSessions', async () => {
        const ns = namespace();
        const kept = sessionRow(ns.owner, ns.id('s', 'kept'));
        const deleted = sessionRow(ns.owner, ns.id('s', 'deleted'));
        await store.commit({ sessions: [kept, deleted] });
        await store.commit({ sessionDeletes: [{ id: deleted.id, at: at(10) }] });

        expect(await store.getSession(deleted.id)).toBeNull();
        expect(await store.getSession(kept.id)).toEqual(kept);
        expect(await store.listSessions(ns.owner)).toEqual([kept]);
      });

      it('keeps the messages and jobs of a deleted session readable', async () => {
        const { owner, sessionId, id } = await withSession();
        const message = messageRow(owner, sessionId, id('m'));
        const job = jobRow(owner, sessionId, id('j'));
        await store.commit({ messages: [message], jobs: [{ row: job, expectedVersion: null }] });
        await store.commit({ sessionDeletes: [{ id: sessionId, at: at(10) }] });

        expect(await store.listMessages(sessionId)).toEqual([message]);
        expect(await store.getJob(job.id)).toEqual({ ...job, version: 1 });
      });
    });

    describe('messages', () => {
      it('round-trips every field, nested metadata and the jobs it answers in order', async () => {
        const { owner, sessionId, id } = await withSession();
        const followUp = messageRow(owner, sessionId, id('m'), {
          role: 'assistant',
          content: 'Both jobs finished.\n"quoted" ✓',
          metadata: {
            bgJobId: id('j', 2),
            bgJobIds: [id('j', 2), id('j', 1)],
            bgResult: 'exit 0',
            toolEvents: [{ round: 1, tool: 'sh', command: 'ls', output: 'a\nb', exitCode: 0 }],
            model: 'gpt-test',
            nothing: null,
          },
          createdAt: at(7),
          answersJobs: [id('j', 2), id('j', 1)],
        });
        await store.commit({ messages: [followUp] });

        expect(await store.listMessages(sessionId)).toEqual([followUp]);
      });

      it('leaves answersJobs out when the message answers no job', async () => {
        const { owner, sessionId, id } = await withSession();
        await store.commit({ messages: [messageRow(owner, sessionId, id('m'))] });

        const [stored] = await store.listMessages(sessionId);
        expect(stored).toBeDefined();
        expect(stored?.answersJobs).toBeUndefined();
      });

      it('lists messages in insertion order even when createdAt disagrees', async () => {
        const { owner, sessionId, id } = await withSession();
        const first = messageRow(owner, sessionId, id('m', 'z'), { createdAt: at(30) });
        const second = messageRow(owner, sessionId, id('m', 'a'), { createdAt: at(10) });
        const third = messageRow(owner, sessionId, id('m', 'm'), { createdAt: at(10) });
        await store.commit({ messages: [first, second] });
        await store.commit({ messages: [third] });

        expect((await store.listMessages(sessionId)).map((m) => m.id)).toEqual([
          first.id,
          second.id,
          third.id,
        ]);
      });

      it('lists a queued message after the history until it enters it, then after every message stored before', async () => {
        const { owner, sessionId, id } = await withSession();
        const first = messageRow(owner, sessionId, id('m', 1));
        const waiting = messageRow(owner, sessionId, id('m', 'q'), { queued: true });
        const later = messageRow(owner, sessionId, id('m', 2), { role: 'assistant' });
        await store.commit({ messages: [first, waiting] });
        await store.commit({ messages: [later] });
        expect(await store.listMessages(sessionId)).toEqual([first, later, waiting]);

        await store.commit({ enteredMessages: [waiting.id] });
        const entered = { ...waiting };
        delete entered.queued;
        expect(await store.listMessages(sessionId)).toEqual([first, later, entered]);

        // Entered twice (a turn run again), it stays where it is; later rows still come after it.
        const answer = messageRow(owner, sessionId, id('m', 3), { role: 'assistant' });
        await store.commit({ messages: [answer] });
        await store.commit({ enteredMessages: [waiting.id] });
        const next = messageRow(owner, sessionId, id('m', 4));
        await store.commit({ messages: [next] });
        expect((await store.listMessages(sessionId)).map((m) => m.id)).toEqual([
          first.id,
          later.id,
          waiting.id,
          answer.id,
          next.id,
        ]);
      });

      it("lists only the session's messages", async () => {
        const a = await withSession();
        const otherSession = a.id('session', 'other');
        await store.commit({ sessions: [sessionRow(a.owner, otherSession)] });
        const mine = messageRow(a.owner, a.sessionId, a.id('m', 'mine'));
        const theirs = messageRow(a.owner, otherSession, a.id('m', 'theirs'));
        await store.commit({ messages: [mine, theirs] });

        expect(await store.listMessages(a.sessionId)).toEqual([mine]);
        expect(await store.listMessages(otherSession)).toEqual([theirs]);
      });
    });

    describe('open turns', () => {
      it('lists the live turns still to answer, the one in the history first, until they close', async () => {
        const { owner, sessionId, id } = await withSession();
        const other = await withSession();
        const turn = (n: number, messageId: string, session = sessionId, who = owner) => ({
          turnId: id('t', n),
          sessionId: session,
          owner: who,
          messageId,
        });
        const waiting = messageRow(owner, sessionId, id('m', 1), { queued: true });
        const later = messageRow(owner, sessionId, id('m', 2), { queued: true });
        const elsewhere = messageRow(other.owner, other.sessionId, id('m', 3));
        await store.commit({ messages: [waiting], openTurns: [turn(1, waiting.id)] });
        await store.commit({ messages: [later], openTurns: [turn(2, later.id)] });
        await store.commit({
          messages: [elsewhere],
          openTurns: [turn(3, elsewhere.id, other.sessionId, other.owner)],
        });
        // The second entered the history (its turn took the lock first).
        await store.commit({ enteredMessages: [later.id] });

        expect(await store.listOpenTurns(sessionId)).toEqual([
          turn(2, later.id),
          turn(1, waiting.id),
        ]);
        expect((await store.listOpenTurns()).map((t) => t.turnId)).toEqual(
          expect.arrayContaining([id('t', 1), id('t', 2), id('t', 3)]),
        );
        await store.commit({ closedTurns: [id('t', 2), id('t', 3)] });
        expect(await store.listOpenTurns(sessionId)).toEqual([turn(1, waiting.id)]);
        expect(await store.listOpenTurns(other.sessionId)).toEqual([]);
      });
    });

    describe('turn journal', () => {
      it('reads back the steps of a turn in step order, and refuses a step written twice', async () => {
        const { sessionId, id } = await withSession();
        const key = `followUp:${id('j')}`;
        const other = `live:${id('t')}`;
        const round = { kind: 'round', round: 1, text: 'é "q"', toolCalls: [{ id: 'c1' }] };
        await store.commit({
          journal: [
            { turnKey: key, sessionId, step: 0, entry: round },
            { turnKey: other, sessionId, step: 0, entry: { kind: 'round' } },
          ],
        });
        await store.commit({
          journal: [{ turnKey: key, sessionId, step: 1, entry: { kind: 'tool', callId: 'c1' } }],
        });
        expect(await store.readJournal(key)).toEqual([round, { kind: 'tool', callId: 'c1' }]);
        expect(await store.readJournal(`live:${id('none')}`)).toEqual([]);

        await expect(
          store.commit({
            journal: [{ turnKey: key, sessionId, step: 1, entry: { kind: 'again' } }],
            messages: [messageRow(id('o'), sessionId, id('m'))],
          }),
        ).rejects.toBeInstanceOf(Error);
        expect(await store.readJournal(key)).toHaveLength(2);
        expect(await store.listMessages(sessionId)).toEqual([]);
      });
    });

    describe('jobs', () => {
      it('round-trips a job with every field set and gives it version 1', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'), {
          command: 'pip install -r requirements.txt',
          cwd: '/srv/app',
          timeoutS: 90.5,
          name: 'install',
          labels: { team: 'web', 'app.example/tier': 'ünïcode ✓' },
          state: 'retrying',
          outcome: 'failed',
          exitCode: 2,
          attempts: 3,
          output: 'head…\n…tail',
          finishedAt: at(4),
          followedUpAt: at(5),
          history: [
            { state: 'running', at: at(1) },
            { state: 'completed', at: at(4) },
            { state: 'retrying', at: at(5) },
          ],
          why: 'retry 3 of 5 at 10:06',
          snapshot: { value: { retrying: 'waiting' }, context: { delays: [1, 2.5], ok: false } },
          process: { pid: 4242, startTime: '123456@boot-1', dir: '/tmp/baton/j', startedAt: at(1) },
        });
        const result = await store.commit({ jobs: [{ row: job, expectedVersion: null }] });

        expect(result.jobVersions).toEqual({ [job.id]: 1 });
        expect(await store.getJob(job.id)).toEqual({ ...job, version: 1 });
      });

      it('round-trips an external job whose optional fields are null', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'), {
          command: null,
          external: true,
          history: [],
          snapshot: null,
        });
        await store.commit({ jobs: [{ row: job, expectedVersion: null }] });

        expect(await store.getJob(job.id)).toEqual({ ...job, version: 1 });
      });

      it('returns null for an unknown job', async () => {
        expect(await store.getJob(namespace().id('missing'))).toBeNull();
      });

      it('increments the version and stores the new fields on an update with the right version', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'));
        await store.commit({ jobs: [{ row: job, expectedVersion: null }] });
        const done = { ...job, state: 'completed', outcome: 'succeeded', exitCode: 0 };
        const second = await store.commit({ jobs: [{ row: done, expectedVersion: 1 }] });
        const final = { ...done, state: 'followedUp', followedUpAt: at(9) };
        const third = await store.commit({ jobs: [{ row: final, expectedVersion: 2 }] });

        expect(second.jobVersions).toEqual({ [job.id]: 2 });
        expect(third.jobVersions).toEqual({ [job.id]: 3 });
        expect(await store.getJob(job.id)).toEqual({ ...final, version: 3 });
      });

      it('keeps the labels a job was created with through its updates', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'), { labels: { kind: 'build' } });
        await store.commit({ jobs: [{ row: job, expectedVersion: null }] });
        await store.commit({ jobs: [{ row: { ...job, state: 'completed' }, expectedVersion: 1 }] });
        expect((await store.getJob(job.id))?.labels).toEqual({ kind: 'build' });
      });

      it('inserts and updates the same job in one batch', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'));
        const moved = { ...job, state: 'completed' };
        const result = await store.commit({
          jobs: [
            { row: job, expectedVersion: null },
            { row: moved, expectedVersion: 1 },
          ],
        });

        expect(result.jobVersions).toEqual({ [job.id]: 2 });
        expect(await store.getJob(job.id)).toEqual({ ...moved, version: 2 });
      });

      it('rolls back the whole batch when a version is stale', async () => {
        const { owner, sessionId, id } = await withSession();
        const current = jobRow(owner, sessionId, id('j', 'current'));
        const stale = jobRow(owner, sessionId, id('j', 'stale'));
        await store.commit({
          jobs: [
            { row: current, expectedVersion: null },
            { row: stale, expectedVersion: null },
          ],
          events: [eventOf(owner, 'job.created')],
        });
        await store.commit({
          jobs: [{ row: { ...stale, state: 'completed' }, expectedVersion: 1 }],
        });

        const newSession = sessionRow(owner, id('session', 'new'));
        const err = await failure(
          store.commit({
            sessions: [newSession],
            sessionDeletes: [{ id: sessionId, at: at(20) }],
            jobs: [
              { row: jobRow(owner, sessionId, id('j', 'new')), expectedVersion: null },
              { row: { ...current, state: 'completed' }, expectedVersion: 1 },
              { row: { ...stale, state: 'cancelled' }, expectedVersion: 1 },
            ],
            messages: [messageRow(owner, sessionId, id('m'), { answersJobs: [current.id] })],
            events: [eventOf(owner, 'job.state'), eventOf(owner, 'message.created')],
          }),
        );

        expect(err).toBeInstanceOf(StoreConflictError);
        expect(err).toMatchObject({ jobId: stale.id, expected: 1, code: 'store_conflict' });
        expect(await store.getSession(newSession.id)).toBeNull();
        expect(await store.getSession(sessionId)).not.toBeNull();
        expect(await store.getJob(id('j', 'new'))).toBeNull();
        expect(await store.getJob(current.id)).toEqual({ ...current, version: 1 });
        expect(await store.getJob(stale.id)).toMatchObject({ state: 'completed', version: 2 });
        expect(await store.listMessages(sessionId)).toEqual([]);
        expect(await store.lastSeq(owner)).toBe(1);
        // The failed message did not take the follow-up slot of the job.
        await store.commit({
          messages: [messageRow(owner, sessionId, id('m', 2), { answersJobs: [current.id] })],
        });
        const next = await store.commit({ events: [eventOf(owner, 'job.state')] });
        expect(next.events.map((e) => e.seq)).toEqual([2]);
      });

      it('rejects an update of a job that does not exist', async () => {
        const { owner, sessionId, id } = await withSession();
        const err = await failure(
          store.commit({ jobs: [{ row: jobRow(owner, sessionId, id('j')), expectedVersion: 1 }] }),
        );

        expect(err).toBeInstanceOf(StoreConflictError);
        expect(await store.getJob(id('j'))).toBeNull();
      });

      it('rejects inserting a job id that exists and keeps the stored job', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'));
        await store.commit({ jobs: [{ row: job, expectedVersion: null }] });
        const err = await failure(
          store.commit({
            jobs: [{ row: { ...job, state: 'cancelled' }, expectedVersion: null }],
            events: [eventOf(owner, 'job.created')],
          }),
        );

        expect(err).toBeInstanceOf(StoreConflictError);
        expect(err).toMatchObject({ jobId: job.id, expected: null });
        expect(await store.getJob(job.id)).toEqual({ ...job, version: 1 });
        expect(await store.lastSeq(owner)).toBe(0);
      });
    });

    describe('listJobs', () => {
      it('filters by owner, session, state and unfinished, ordered by createdAt then id', async () => {
        const ns = namespace();
        const s1 = ns.id('session', 1);
        const s2 = ns.id('session', 2);
        const foreignSession = ns.id('session', 'foreign');
        await store.commit({
          sessions: [
            sessionRow(ns.owner, s1),
            sessionRow(ns.owner, s2),
            sessionRow(ns.otherOwner, foreignSession),
          ],
        });
        const rows = [
          jobRow(ns.owner, s1, ns.id('j', 'b'), { createdAt: at(5), state: 'running' }),
          jobRow(ns.owner, s1, ns.id('j', 'a'), { createdAt: at(5), state: 'followedUp' }),
          jobRow(ns.owner, s2, ns.id('j', 'c'), { createdAt: at(1), state: 'awaitingIdleSession' }),
          jobRow(ns.owner, s2, ns.id('j', 'd'), { createdAt: at(9), state: 'failed' }),
          jobRow(ns.owner, s2, ns.id('j', 'e'), { createdAt: at(7), state: 'cancelled' }),
          jobRow(ns.owner, s1, ns.id('j', 'f'), { createdAt: at(8), state: 'skipped' }),
          jobRow(ns.owner, s1, ns.id('j', 'g'), { createdAt: at(6), state: 'retrying' }),
          jobRow(ns.otherOwner, foreignSession, ns.id('j', 'x'), { state: 'running' }),
        ];
        await store.commit({ jobs: rows.map((row) => ({ row, expectedVersion: null })) });
        const ids = async (filter: Parameters<Store['listJobs']>[0]) =>
          (await store.listJobs(filter)).map((j) => j.id.split('-').pop());

        expect(await ids({ owner: ns.owner })).toEqual(['c', 'a', 'b', 'g', 'e', 'f', 'd']);
        expect(await ids({ sessionId: s1 })).toEqual(['a', 'b', 'g', 'f']);
        expect(await ids({ owner: ns.owner, state: 'running' })).toEqual(['b']);
        expect(await ids({ owner: ns.owner, unfinished: true })).toEqual(['c', 'b', 'g']);
        expect(await ids({ sessionId: s2, unfinished: true })).toEqual(['c']);
        expect(await ids({ owner: ns.otherOwner })).toEqual(['x']);
        expect(await ids({ sessionId: s1, state: 'followedUp', unfinished: true })).toEqual([]);
        expect(await store.listJobs({ owner: ns.owner, unfinished: false })).toHaveLength(7);
        expect(await store.listJobs({ sessionId: s1 })).toContainEqual({ ...rows[0], version: 1 });
      });
    });

    describe('follow-ups', () => {
      it('rejects a second message answering the same job and rolls back everything', async () => {
        const { owner, sessionId, id } = await withSession();
        const job = jobRow(owner, sessionId, id('j'), { state: 'continuing' });
        const first = messageRow(owner, sessionId, id('m', 1), {
          role: 'assistant',
          answersJobs: [job.id],
        });
        await store.commit({
          jobs: [{ row: job, expectedVersion: null }],
          messages: [first],
          events: [eventOf(owner, 'message.created')],
        });

        const err = await failure(
          store.commit({
            jobs: [{ row: { ...job, state: 'followedUp' }, expectedVersion: 1 }],
            messages: [
              messageRow(owner, sessionId, id('m', 'plain')),
              messageRow(owner, sessionId, id('m', 2), {
                role: 'assistant',
                answersJobs: [job.id],
              }),
            ],
            events: [eventOf(owner, 'message.created'), eventOf(owner, 'job.state')],
          }),
        );

        expect(err).toBeInstanceOf(DuplicateFollowUpError);
        expect(err).toMatchObject({ jobId: job.id, code: 'duplicate_follow_up' });
        expect(await store.listMessages(sessionId)).toEqual([first]);
        expect(await store.getJob(job.id)).toEqual({ ...job, version: 1 });
        expect(await store.lastSeq(owner)).toBe(1);
        expect(await store.readEvents(owner, 0, 10)).toHaveLength(1);
      });

      it('names the colliding job of a coalesced message and frees the others', async () => {
        const { owner, sessionId, id } = await withSession();
        await store.commit({
          messages: [messageRow(owner, sessionId, id('m', 1), { answersJobs: [id('j', 2)] })],
        });

        const err = await failure(
          store.commit({
            messages: [
              messageRow(owner, sessionId, id('m', 2), {
                answersJobs: [id('j', 1), id('j', 2), id('j', 3)],
              }),
            ],
            events: [eventOf(owner, 'message.created')],
          }),
        );

        expect(err).toBeInstanceOf(DuplicateFollowUpError);
        expect(err).toMatchObject({ jobId: id('j', 2) });
        expect(await store.lastSeq(owner)).toBe(0);
        const retry = messageRow(owner, sessionId, id('m', 3), {
          answersJobs: [id('j', 1), id('j', 3)],
        });
        const result = await store.commit({
          messages: [retry],
          events: [eventOf(owner, 'message.created')],
        });
        expect(result.events.map((e) => e.seq)).toEqual([1]);
        expect((await store.listMessages(sessionId)).map((m) => m.answersJobs)).toEqual([
          [id('j', 2)],
          [id('j', 1), id('j', 3)],
        ]);
      });

      it('rejects two messages in one batch answering the same job', async () => {
        const { owner, sessionId, id } = await withSession();
        const err = await failure(
          store.commit({
            messages: [
              messageRow(owner, sessionId, id('m', 1), { answersJobs: [id('j')] }),
              messageRow(owner, sessionId, id('m', 2), { answersJobs: [id('j')] }),
            ],
          }),
        );

        expect(err).toBeInstanceOf(DuplicateFollowUpError);
        expect(await store.listMessages(sessionId)).toEqual([]);
      });
    });

    describe('events', () => {
      it('starts seq at 1 and increases it by exactly one per owner across interleaved owners', async () => {
        const { owner, otherOwner } = namespace();
        const first = await store.commit({
          events: [
            eventOf(owner, 'a1'),
            eventOf(otherOwner, 'b1'),
            eventOf(owner, 'a2'),
            eventOf(owner, 'a3'),
          ],
        });
        const second = await store.commit({
          events: [eventOf(otherOwner, 'b2'), eventOf(owner, 'a4')],
        });

        expect(first.events.map((e) => [e.type, e.seq])).toEqual([
          ['a1', 1],
          ['b1', 1],
          ['a2', 2],
          ['a3', 3],
        ]);
        expect(second.events.map((e) => [e.type, e.seq])).toEqual([
          ['b2', 2],
          ['a4', 4],
        ]);
        expect(await store.lastSeq(owner)).toBe(4);
        expect(await store.lastSeq(otherOwner)).toBe(2);
      });

      it('returns the stored events with absent ids as null, equal to what readEvents replays', async () => {
        const { owner, id } = namespace();
        const full = eventOf(owner, 'job.state', {
          sessionId: id('session'),
          jobId: id('j'),
          turnId: id('t'),
          data: { state: 'completed', outcome: 'succeeded', attempts: 1, nested: { a: [1, null] } },
        });
        const bare = eventOf(owner, 'session.lock', { data: { held: false } });
        const result = await store.commit({ events: [full, bare] });

        expect(result.events).toEqual([
          { ...full, seq: 1 },
          { ...bare, seq: 2, sessionId: null, jobId: null, turnId: null },
        ]);
        expect(result.jobVersions).toEqual({});
        expect(await store.readEvents(owner, 0, 100)).toEqual(result.events);
      });

      it('reads events after since, at most limit, in seq order', async () => {
        const { owner, otherOwner } = namespace();
        const types = ['e1', 'e2', 'e3', 'e4', 'e5'];
        await store.commit({ events: types.slice(0, 2).map((t) => eventOf(owner, t)) });
        await store.commit({ events: [eventOf(otherOwner, 'x1')] });
        await store.commit({ events: types.slice(2).map((t) => eventOf(owner, t)) });
        const seqs = async (since: number, limit: number) =>
          (await store.readEvents(owner, since, limit)).map((e) => e.seq);

        expect(await seqs(0, 100)).toEqual([1, 2, 3, 4, 5]);
        expect(await seqs(2, 100)).toEqual([3, 4, 5]);
        expect(await seqs(1, 2)).toEqual([2, 3]);
        expect(await seqs(5, 10)).toEqual([]);
        expect((await store.readEvents(owner, 0, 100)).map((e) => e.type)).toEqual(types);
        expect((await store.readEvents(otherOwner, 0, 100)).map((e) => e.type)).toEqual(['x1']);
      });

      it("reads only one session's events when a session is given", async () => {
        const { owner, id } = namespace();
        const a = id('session', 'a');
        const b = id('session', 'b');
        await store.commit({
          events: [
            eventOf(owner, 'one', { sessionId: a }),
            eventOf(owner, 'two', { sessionId: b }),
            eventOf(owner, 'three'),
            eventOf(owner, 'four', { sessionId: a }),
            eventOf(owner, 'five', { sessionId: a }),
          ],
        });
        const read = async (since: number, limit: number, sessionId: string) =>
          (await store.readEvents(owner, since, limit, sessionId)).map((e) => [e.type, e.seq]);

        expect(await read(0, 100, a)).toEqual([
          ['one', 1],
          ['four', 4],
          ['five', 5],
        ]);
        expect(await read(1, 1, a)).toEqual([['four', 4]]);
        expect(await read(0, 100, b)).toEqual([['two', 2]]);
        expect(await read(0, 100, id('session', 'none'))).toEqual([]);
      });

      it('reports lastSeq 0 for an owner without events', async () => {
        expect(await store.lastSeq(namespace().owner)).toBe(0);
      });

      it('reports the lastSeq of every owner at once, and none for an owner without events', async () => {
        const { owner, otherOwner } = namespace();
        await store.commit({ events: [eventOf(owner, 'a1'), eventOf(owner, 'a2')] });
        await store.commit({ events: [eventOf(otherOwner, 'b1'), eventOf(owner, 'a3')] });
        const heads = await store.lastSeqs();
        expect(heads.get(owner)).toBe(3);
        expect(heads.get(otherOwner)).toBe(1);
        expect(heads.has(namespace().owner)).toBe(false);
      });

      it('commits an empty batch without allocating anything', async () => {
        const { owner } = namespace();
        expect(await store.commit({})).toEqual({ events: [], jobVersions: {} });
        await store.commit({ events: [eventOf(owner, 'x')] });
        expect(await store.lastSeq(owner)).toBe(1);
      });
    });

    pruneContract(() => store);

    describe('fencing', () => {
      it('applies a batch fenced with the session’s current epoch', async () => {
        const { owner, id } = namespace();
        await store.commit({ sessions: [sessionRow(owner, id('s'))] });
        await store.commit({
          fence: { sessionId: id('s'), epoch: 0 },
          jobs: [{ row: jobRow(owner, id('s'), id('j')), expectedVersion: null }],
        });
        expect((await store.getJob(id('j')))?.version).toBe(1);
      });

      it('refuses a batch fenced with another epoch and writes none of it', async () => {
        const { owner, id } = namespace();
        await store.commit({ sessions: [sessionRow(owner, id('s'))] });
        const err = await failure(
          store.commit({
            fence: { sessionId: id('s'), epoch: 7 },
            jobs: [{ row: jobRow(owner, id('s'), id('j')), expectedVersion: null }],
            events: [eventOf(owner, 'x')],
          }),
        );
        expect(err).toBeInstanceOf(FencedError);
        expect(err).toBeInstanceOf(StoreConflictError);
        expect(await store.getJob(id('j'))).toBeNull();
        expect(await store.lastSeq(owner)).toBe(0);
      });
    });

    describe('lifecycle', () => {
      it('closes twice without error and rejects every later call with StoreWriteError', async () => {
        const { owner, id } = namespace();
        await store.close();
        await expect(store.close()).resolves.toBeUndefined();

        const calls: Promise<unknown>[] = [
          store.commit({ events: [eventOf(owner, 'x')] }),
          store.getSession(id('s')),
          store.listSessions(owner),
          store.listMessages(id('s')),
          store.getJob(id('j')),
          store.listJobs({ owner }),
          store.readEvents(owner, 0, 10),
          store.lastSeq(owner),
          store.firstSeq(owner),
          store.pruneEvents(at(0), 10),
        ];
        for (const call of calls) {
          expect(await failure(call)).toBeInstanceOf(StoreWriteError);
        }
      });
    });

    /** A step of the seq properties: events of some of three owners, and maybe a failure. */
    const seqStep = fc.record({
      owners: fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 5 }),
      failure: fc.constantFrom('none', 'none', 'stale', 'duplicate'),
    });
    type SeqStep = { owners: number[]; failure: 'none' | 'stale' | 'duplicate' };

    /**
     * Three fresh owners, and a session with a job that is answered already;
     * `batch` builds a step's batch: a stale step also writes the job at a
     * version it never had, a duplicate step answers the job a second time.
     */
    async function seqFixture() {
      const ns = namespace();
      const owners = [ns.id('owner', 0), ns.id('owner', 1), ns.id('owner', 2)];
      const sessionId = ns.id('session');
      const job = jobRow(ns.owner, sessionId, ns.id('j'));
      await store.commit({
        sessions: [sessionRow(ns.owner, sessionId)],
        jobs: [{ row: job, expectedVersion: null }],
        messages: [messageRow(ns.owner, sessionId, ns.id('m', 0), { answersJobs: [job.id] })],
      });
      const batch = ({ owners: picks, failure: kind }: SeqStep, i: number): Batch => {
        const built: Batch = {
          events: picks.map((o, k) => eventOf(owners[o] ?? '', `b${i}e${k}`)),
        };
        if (kind === 'stale') built.jobs = [{ row: job, expectedVersion: 7 }];
        if (kind === 'duplicate') {
          built.messages = [
            messageRow(ns.owner, sessionId, ns.id('m', i + 1), { answersJobs: [job.id] }),
          ];
        }
        return built;
      };
      return { owners, batch };
    }

    const outcomeOf = (commit: Promise<CommitResult>) =>
      commit.then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );

    it('allocates seqs 1..n per owner with no gap when some batches roll back', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(seqStep, { minLength: 1, maxLength: 12 }), async (steps) => {
          const { owners, batch } = await seqFixture();
          const committed: string[][] = [[], [], []];

          for (const [i, step] of steps.entries()) {
            const outcome = await outcomeOf(store.commit(batch(step, i)));
            expect(outcome.ok).toBe(step.failure === 'none');
            if (!outcome.ok) continue;
            const expected = step.owners.map((o, k) => {
              const log = committed[o] ?? [];
              log.push(`b${i}e${k}`);
              return log.length;
            });
            expect(outcome.result.events.map((e) => e.seq)).toEqual(expected);
          }

          for (const [o, owner] of owners.entries()) {
            const log = committed[o] ?? [];
            const events = await store.readEvents(owner, 0, 1000);
            expect(events.map((e) => e.seq)).toEqual(log.map((_, k) => k + 1));
            expect(events.map((e) => e.type)).toEqual(log);
            expect(await store.lastSeq(owner)).toBe(log.length);
          }
        }),
        { numRuns: 40 },
      );
    });

    it('answers each of many batches handed in at once on its own, with gapless seqs', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(seqStep, { minLength: 1, maxLength: 12 }), async (steps) => {
          const { owners, batch } = await seqFixture();
          // Handed in without waiting: a store that commits them together
          // must still fail only the batches that fail.
          const outcomes = await Promise.all(
            steps.map((step, i) => outcomeOf(store.commit(batch(step, i)))),
          );

          const stored: Record<string, string[]> = {};
          for (const [i, outcome] of outcomes.entries()) {
            const kind = steps[i]?.failure;
            expect(outcome.ok).toBe(kind === 'none');
            if (!outcome.ok) {
              expect(outcome.error).toBeInstanceOf(
                kind === 'stale' ? StoreConflictError : DuplicateFollowUpError,
              );
              continue;
            }
            for (const event of outcome.result.events) {
              (stored[event.owner] ??= [])[event.seq - 1] = event.type;
            }
          }
          for (const owner of owners) {
            const events = await store.readEvents(owner, 0, 1000);
            // Every committed event is stored under the seq it was answered
            // with, and the seqs are 1..n with no gap.
            expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
            expect(events.map((e) => e.type)).toEqual(stored[owner] ?? []);
            expect(await store.lastSeq(owner)).toBe(events.length);
          }
        }),
        { numRuns: 40 },
      );
    });
  });
}

import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIAgent } from '../../src/runtime/agents/openai.js';
import type { LockRecord } from '../../src/runtime/session-locks.js';
import { startFakeOpenAI, lastUserContent, type FakeOpenAI } from '../support/fake-openai.js';
import { startTestBaton, type TestBaton } from '../support/baton.js';
import { waitFor } from '../support/wait.js';

interface Hold {
  id: string;
  kind: string;
  from: number;
  to: number;
}

/** Turns grant/release records into intervals during which each holder had the lock. */
function holds(records: LockRecord[]): Hold[] {
  const open = new Map<string, LockRecord>();
  const out: Hold[] = [];
  for (const r of records) {
    if (r.event === 'granted') open.set(r.id, r);
    else {
      const g = open.get(r.id);
      if (g) out.push({ id: r.id, kind: g.kind, from: g.at, to: r.at });
      open.delete(r.id);
    }
  }
  return out;
}

describe('the session mutex at runtime', () => {
  let t: TestBaton | undefined;
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await t?.close();
    await fake?.close();
    t = undefined;
    fake = undefined;
  });

  it('never lets a live turn and a follow-up hold one session at once', async () => {
    // Every answer streams slowly, so turns and follow-ups would overlap without the lock.
    fake = await startFakeOpenAI(() => ({ text: 'slow answer here', chunkSize: 4, delayMs: 15 }));
    const records: LockRecord[] = [];
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      onLockRecord: (_, r) => records.push(r),
    });
    const session = await t.baton.createSession('alice', {});
    const jobs = [];
    for (let i = 0; i < 3; i++) {
      await t.baton.sendMessage('alice', session.id, `hello ${i}`);
      const job = await t.baton.startJob('alice', session.id, { external: true });
      jobs.push(job);
      await t.baton.completeJob('alice', job.id, { exitCode: 0, output: `out ${i}` });
      await t.baton.sendMessage('alice', session.id, `again ${i}`);
    }
    await waitFor(async () => {
      const all = await t!.baton.listJobs('alice', { sessionId: session.id });
      return all.every((j) => j.state === 'followedUp') && t!.baton.getSession('alice', session.id);
    });
    const view = await waitFor(async () => {
      const s = await t!.baton.getSession('alice', session.id);
      return s.lock?.lock === 'idle' ? s : undefined;
    });
    expect(view.lock).toEqual({ lock: 'idle', holder: null, queue: [] });
    const intervals = holds(records).sort((a, b) => a.from - b.from);
    expect(intervals.filter((h) => h.kind === 'live')).toHaveLength(6);
    expect(intervals.some((h) => h.kind === 'followUp')).toBe(true);
    for (let i = 1; i < intervals.length; i++) {
      expect(intervals[i]!.from).toBeGreaterThanOrEqual(intervals[i - 1]!.to);
    }
    // The stored conversation never has a continuation between a user message and its answer.
    const messages = await t.baton.listMessages('alice', session.id);
    const turnOf = (m: { metadata: Record<string, unknown> }) => m.metadata['turnId'];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.role !== 'user') continue;
      const answer = messages.findIndex(
        (a, k) => k > i && a.role === 'assistant' && turnOf(a) === turnOf(m),
      );
      const between = messages.slice(i + 1, answer);
      expect(between.filter((b) => b.metadata['bgJobId'] !== undefined)).toEqual([]);
    }
  });

  it('gives the lock first to a user message stored before a job finishes in the same instant', async () => {
    fake = await startFakeOpenAI(() => 'answer');
    const records: LockRecord[] = [];
    t = await startTestBaton({
      agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }),
      onLockRecord: (_, r) => records.push(r),
    });
    const session = await t.baton.createSession('alice', {});
    const job = await t.baton.startJob('alice', session.id, { external: true });
    // Both writes are queued in this order in the same turn of the event loop
    // and share one commit: the message is stored first, so its turn goes first.
    const [{ turnId }] = await Promise.all([
      t.baton.sendMessage('alice', session.id, 'hello'),
      t.baton.completeJob('alice', job.id, { exitCode: 0, output: 'done' }),
    ]);
    await waitFor(async () => (await t!.baton.getJob('alice', job.id)).state === 'followedUp');
    const grants = records.filter((r) => r.event === 'granted').map((r) => r.id);
    expect(grants).toEqual([turnId, job.id]);
    const roles = (await t.baton.listMessages('alice', session.id)).map((m) =>
      m.metadata['bgJobId'] ? 'followUp' : m.role,
    );
    expect(roles).toEqual(['user', 'assistant', 'followUp']);
  });

  it('answers three jobs that wait behind a live turn with one continuation', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    fake = await startFakeOpenAI(async (req) => {
      if (!lastUserContent(req).startsWith('[Background job')) await gate;
      return 'answer';
    });
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const session = await t.baton.createSession('alice', {});
    await t.baton.sendMessage('alice', session.id, 'a long live turn');
    await fake.waitForRequests(1);
    const jobs = [];
    for (let i = 0; i < 3; i++) {
      const job = await t.baton.startJob('alice', session.id, { external: true, name: `j${i}` });
      await t.baton.completeJob('alice', job.id, { exitCode: 0, output: `result ${i}` });
      jobs.push(job);
    }
    const waiting = await t.baton.getJob('alice', jobs[0]!.id);
    expect(waiting.state).toBe('awaitingIdleSession');
    expect(waiting.why).toMatch(/^waiting for the session: live turn t_/);
    release();
    await waitFor(async () => {
      const all = await t!.baton.listJobs('alice', { sessionId: session.id });
      return all.every((j) => j.state === 'followedUp');
    });
    const followUps = (await t.baton.listMessages('alice', session.id)).filter(
      (m) => m.metadata['bgJobId'] !== undefined,
    );
    expect(followUps).toHaveLength(1);
    expect(followUps[0]!.metadata['bgJobIds']).toEqual(jobs.map((j) => j.id));
    expect(fake.requests).toHaveLength(2);
    const trigger = lastUserContent(fake.requests[1]!);
    for (const job of jobs) expect(trigger).toContain(`[Background job ${job.id} finished]`);
  });

  it('skips the jobs of a deleted session and tells its waiters', async () => {
    fake = await startFakeOpenAI(() => ({ fault: 'hang' }));
    t = await startTestBaton({ agent: new OpenAIAgent({ baseURL: fake.url, model: 'm' }) });
    const session = await t.baton.createSession('alice', {});
    await t.baton.sendMessage('alice', session.id, 'hangs');
    await fake.waitForRequests(1);
    const external = await t.baton.startJob('alice', session.id, { external: true });
    await t.baton.completeJob('alice', external.id, { exitCode: 0 });
    const proc = await t.baton.startJob('alice', session.id, { command: 'sleep 30' });
    await t.baton.deleteSession('alice', session.id);
    await waitFor(async () => {
      const a = await t!.store.getJob(external.id);
      const b = await t!.store.getJob(proc.id);
      return a?.state === 'skipped' && b?.state === 'skipped';
    });
    await expect(t.baton.getSession('alice', session.id)).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});

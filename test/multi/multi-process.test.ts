import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { waitFor } from '../support/wait.js';
import { startCluster, TOKEN, type Cluster } from './cluster.js';

interface Frame {
  seq?: number;
  type: string;
  sessionId?: string;
  data: Record<string, unknown>;
}

describe('several processes on one PostgreSQL database', () => {
  let cluster: Cluster;
  let fake: FakeOpenAI;

  beforeAll(async () => {
    // Every answer streams for a while, so a turn and a follow-up would overlap without the lock.
    fake = await startFakeOpenAI(() => ({
      text: 'a slow and steady answer',
      chunkSize: 3,
      delayMs: 10,
    }));
    cluster = await startCluster(3, [
      '--agent',
      'openai',
      '--agent-url',
      fake.url,
      '--retry-base-ms',
      '50',
    ]);
  }, 120_000);

  afterAll(async () => {
    await cluster?.close();
    await fake?.close();
  }, 60_000);

  it('never runs a live turn sent through A and a follow-up on B at once', async () => {
    const [a, b] = cluster.nodes;
    const session = (await b!.call('POST', '/v1/sessions', { title: 'shared' })).body;
    for (let i = 0; i < 3; i++) {
      const sent = await a!.call('POST', `/v1/sessions/${session.id}/messages`, {
        content: `hi ${i}`,
      });
      expect(sent.status).toBe(202);
      const job = (await a!.call('POST', `/v1/sessions/${session.id}/jobs`, { external: true }))
        .body;
      const done = await a!.call('POST', `/v1/jobs/${job.id}/complete`, {
        exitCode: 0,
        output: 'ok',
      });
      expect(done.status).toBe(200);
    }
    await waitFor(
      async () => {
        const jobs = (await a!.call('GET', `/v1/jobs?sessionId=${session.id}`)).body.jobs;
        return jobs.length === 3 && jobs.every((j: { state: string }) => j.state === 'followedUp');
      },
      { timeoutMs: 30_000, what: 'all follow-ups' },
    );
    const messages = (await b!.call('GET', `/v1/sessions/${session.id}/messages`)).body.messages;
    // Stored order: between a user message and its answer there is never a follow-up.
    for (let i = 0; i < messages.length; i++) {
      if (messages[i].role !== 'user') continue;
      const turnId = messages[i].metadata.turnId;
      const answer = messages.findIndex(
        (m: { role: string; metadata: { turnId?: string } }, k: number) =>
          k > i && m.role === 'assistant' && m.metadata.turnId === turnId,
      );
      expect(answer).toBeGreaterThan(i);
      const between = messages.slice(i + 1, answer);
      expect(between.filter((m: { metadata: { bgJobId?: string } }) => m.metadata.bgJobId)).toEqual(
        [],
      );
    }
    // A owned nothing here: every call made through A ran on B, forwarded as a command.
    const forwarded = await cluster.query(
      `SELECT count(*)::int AS n FROM "${cluster.schema}".commands WHERE result IS NOT NULL`,
    );
    expect(forwarded.rows[0].n).toBeGreaterThanOrEqual(9);
    const live = messages.filter(
      (m: { role: string; metadata: { turnId?: string } }) =>
        m.role === 'assistant' && m.metadata.turnId,
    );
    expect(live).toHaveLength(3);
    const answered = messages.flatMap(
      (m: { metadata: { bgJobId?: string; bgJobIds?: string[] } }) =>
        m.metadata.bgJobIds ?? (m.metadata.bgJobId ? [m.metadata.bgJobId] : []),
    );
    expect(answered).toHaveLength(3);
    expect(new Set(answered).size).toBe(3);
  }, 60_000);

  it('shows a client on C every event made on A and B, in order, with no gap', async () => {
    const [a, b, c] = cluster.nodes;
    const frames: Frame[] = [];
    const ws = new WebSocket(`${c!.url.replace('http', 'ws')}/v1/events?token=${TOKEN}&since=0`);
    ws.on('message', (data) => frames.push(JSON.parse(data.toString()) as Frame));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const s1 = (await a!.call('POST', '/v1/sessions', { title: 'on A' })).body;
    const s2 = (await b!.call('POST', '/v1/sessions', { title: 'on B' })).body;
    await a!.call('POST', `/v1/sessions/${s1.id}/messages`, { content: 'from A' });
    await b!.call('POST', `/v1/sessions/${s2.id}/messages`, { content: 'from B' });
    await waitFor(
      () =>
        frames.filter(
          (f) => f.type === 'turn.finished' && (f.sessionId === s1.id || f.sessionId === s2.id),
        ).length === 2,
      { timeoutMs: 20_000, what: 'both turns on the feed of C' },
    );
    ws.close();
    const seqs = frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(frames.some((f) => f.type === 'session.created' && f.sessionId === s1.id)).toBe(true);
    expect(frames.some((f) => f.type === 'session.created' && f.sessionId === s2.id)).toBe(true);
    // Streamed deltas made on A and B reach C too.
    expect(frames.some((f) => f.type === 'turn.delta' && f.sessionId === s1.id)).toBe(true);
  }, 60_000);

  it('moves the sessions of a killed process to the others, and every job is followed up once', async () => {
    const [a, , c] = cluster.nodes;
    const victim = await cluster.start('D');
    const sessions: string[] = [];
    const jobs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const session = (await victim.call('POST', '/v1/sessions', { title: `victim ${i}` })).body;
      sessions.push(session.id);
      const proc = (
        await victim.call('POST', `/v1/sessions/${session.id}/jobs`, {
          command: 'sleep 1.5; echo survived',
        })
      ).body;
      const ext = (await victim.call('POST', `/v1/sessions/${session.id}/jobs`, { external: true }))
        .body;
      jobs.push(proc.id, ext.id);
    }
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedAt = Date.now();
    // The external jobs are finished through C: the new owner (A, B or C) gets them.
    for (const id of jobs.filter((_, i) => i % 2 === 1)) {
      const done = await c!.call('POST', `/v1/jobs/${id}/complete`, {
        exitCode: 0,
        output: 'reported',
      });
      expect(done.status).toBe(200);
    }
    const movedAt = await waitFor(
      async () => {
        const states = await Promise.all(
          jobs.map(async (id) => (await a!.call('GET', `/v1/jobs/${id}`)).body.state),
        );
        return states.every((s) => s === 'followedUp') ? Date.now() : undefined;
      },
      { timeoutMs: 30_000, what: 'the jobs of the killed process' },
    );
    console.log(
      `multi: the killed process's jobs were all followed up ${movedAt - killedAt} ms after the kill`,
    );
    const answered = new Set<string>();
    for (const sessionId of sessions) {
      for (const m of (await a!.call('GET', `/v1/sessions/${sessionId}/messages`)).body.messages) {
        for (const id of m.metadata.bgJobIds ?? (m.metadata.bgJobId ? [m.metadata.bgJobId] : [])) {
          expect(answered.has(id)).toBe(false);
          answered.add(id);
        }
      }
    }
    expect([...answered].sort()).toEqual([...jobs].sort());
  }, 90_000);

  it('hands the sessions of a process stopped with SIGTERM to the others', async () => {
    const [a] = cluster.nodes;
    const leaving = await cluster.start('E');
    const session = (await leaving.call('POST', '/v1/sessions', { title: 'handed over' })).body;
    const job = (await leaving.call('POST', `/v1/sessions/${session.id}/jobs`, { external: true }))
      .body;
    const before = await cluster.query(
      `SELECT owner_host FROM "${cluster.schema}".sessions WHERE id = '${session.id}'`,
    );
    expect(before.rows[0].owner_host).toBe(leaving.hostId);
    leaving.child.kill('SIGTERM');
    expect(await leaving.exited).toBe(0);
    const done = await a!.call('POST', `/v1/jobs/${job.id}/complete`, { exitCode: 0 });
    expect(done.status).toBe(200);
    await waitFor(
      async () => (await a!.call('GET', `/v1/jobs/${job.id}`)).body.state === 'followedUp',
      {
        what: 'the follow-up on the new owner',
      },
    );
    const after = await cluster.query(
      `SELECT owner_host, owner_epoch FROM "${cluster.schema}".sessions WHERE id = '${session.id}'`,
    );
    expect(after.rows[0].owner_host).not.toBe(leaving.hostId);
    expect(Number(after.rows[0].owner_epoch)).toBe(2);
  }, 60_000);
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBaton, type BatonProcess } from '../support/baton-process.js';
import {
  startFakeOpenAI,
  toolCall,
  toolResults,
  type FakeOpenAI,
  type FakeReply,
  type RecordedRequest,
} from '../support/fake-openai.js';
import { httpApi } from '../support/http-api.js';
import { waitFor } from '../support/wait.js';

interface Job {
  id: string;
  command: string | null;
  state: string;
}
interface Message {
  role: string;
  metadata: Record<string, unknown>;
}

const CHILD = 'sleep 120';

/**
 * A follow-up whose first round starts a background job and whose second
 * round fails: retried (or recovered after a SIGKILL), it goes on from its
 * journal, so the job is started once and the job is answered once. Over
 * HTTP against `baton serve` in its own process and a scripted
 * OpenAI-compatible endpoint.
 */
describe('a tool call of a retried follow-up', () => {
  let baton: BatonProcess | undefined;
  let fake: FakeOpenAI | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await baton?.stop();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    baton = undefined;
  });

  /** Round 1 of a follow-up starts CHILD; round 2 (a request with a tool result) is `second`. */
  async function serve(second: (request: RecordedRequest) => FakeReply | Promise<FakeReply>) {
    fake = await startFakeOpenAI((request) =>
      toolResults(request).length === 0
        ? { toolCalls: [toolCall('start_background_job', { command: CHILD })] }
        : second(request),
    );
    dir = mkdtempSync(join(tmpdir(), 'baton-tool-once-'));
    const start = async () =>
      startBaton({
        dataDir: dir!,
        port: 0,
        extraArgs: [
          ...['--agent', 'openai', '--agent-url', fake!.url, '--agent-model', 'm'],
          ...['--retry-base-ms', '50', '--retry-max-ms', '200', '--max-attempts', '6'],
        ],
      });
    baton = await start();
    const call = httpApi(() => baton!).ok;
    const session = await call('POST', '/v1/sessions', {});
    const job: Job = await call('POST', `/v1/sessions/${session.id}/jobs`, { external: true });
    await call('POST', `/v1/jobs/${job.id}/complete`, { exitCode: 0, output: 'ok' });
    const restart = async () => {
      baton = await start();
    };
    return { call, sessionId: session.id as string, jobId: job.id, restart };
  }

  async function outcome(api: Awaited<ReturnType<typeof serve>>) {
    const done = await waitFor(
      async () => {
        const jobs: Job[] = (await api.call('GET', `/v1/jobs?sessionId=${api.sessionId}`)).jobs;
        return jobs.find((j) => j.id === api.jobId)?.state === 'followedUp' ? jobs : undefined;
      },
      { timeoutMs: 30_000, what: 'the follow-up' },
    );
    const messages: Message[] = (await api.call('GET', `/v1/sessions/${api.sessionId}/messages`))
      .messages;
    const children = done.filter((j) => j.command === CHILD);
    for (const child of children) await api.call('POST', `/v1/jobs/${child.id}/cancel`);
    return {
      children,
      continuations: messages.filter((m) => m.metadata['bgJobId'] === api.jobId),
      firstRounds: fake!.requests.filter((r) => toolResults(r).length === 0).length,
    };
  }

  it('starts its job once when round 2 fails three times', async () => {
    let failures = 0;
    const api = await serve(() =>
      failures++ < 3 ? { fault: 'status', status: 500 } : 'The build runs in the background.',
    );
    const { children, continuations, firstRounds } = await outcome(api);
    expect(children).toHaveLength(1);
    expect(continuations).toHaveLength(1);
    expect(firstRounds).toBe(1);
    // Every round-2 request carried the result of the one call round 1 made.
    const seconds = fake!.requests.filter((r) => toolResults(r).length > 0);
    expect(seconds).toHaveLength(4);
    for (const request of seconds) {
      expect(toolResults(request)).toEqual([
        { toolCallId: expect.any(String), content: expect.stringContaining(children[0]!.id) },
      ]);
    }
  }, 60_000);

  it('starts its job once when the server is SIGKILLed between the tool call and round 2', async () => {
    let killed = false;
    let sawSecond!: () => void;
    const second = new Promise<void>((resolve) => (sawSecond = resolve));
    const api = await serve(async () => {
      if (!killed) {
        sawSecond();
        // Held until the server that asked is gone.
        return { fault: 'hang' };
      }
      return 'The build runs in the background.';
    });
    await second;
    killed = true;
    baton!.child.kill('SIGKILL');
    await baton!.stop();
    await api.restart();
    const { children, continuations, firstRounds } = await outcome(api);
    expect(children).toHaveLength(1);
    expect(continuations).toHaveLength(1);
    expect(firstRounds).toBe(1);
  }, 60_000);
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBaton, type BatonProcess } from '../support/baton-process.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { httpApi } from '../support/http-api.js';
import { waitFor } from '../support/wait.js';

interface Message {
  role: string;
  content: string;
  metadata: Record<string, unknown>;
}

/**
 * Live turns cut by a SIGKILL or a SIGTERM are not lost: `baton serve`, in
 * its own process, is stopped while the model streams its answers, and
 * after the restart every message has exactly one answer.
 */
describe('live turns across a restart', () => {
  let baton: BatonProcess | undefined;
  let fake: FakeOpenAI | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await baton?.stop();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    baton = undefined;
  });

  async function serve() {
    // Until the first server is gone, every answer hangs mid-stream.
    let hanging = true;
    fake = await startFakeOpenAI(() =>
      hanging ? { fault: 'hang', text: 'Thinking about' } : 'Answered after the restart.',
    );
    dir = mkdtempSync(join(tmpdir(), 'baton-live-recovery-'));
    const start = async () => {
      baton = await startBaton({
        dataDir: dir!,
        port: 0,
        extraArgs: ['--agent', 'openai', '--agent-url', fake!.url, '--agent-model', 'm'],
      });
    };
    await start();
    const call = httpApi(() => baton!).ok;
    const sessions: string[] = [];
    for (let i = 0; i < 3; i++) {
      const session = await call('POST', '/v1/sessions', {});
      sessions.push(session.id);
      // Two messages each: one turn streams, the other waits queued behind it.
      await call('POST', `/v1/sessions/${session.id}/messages`, { content: `first ${i}` });
      await call('POST', `/v1/sessions/${session.id}/messages`, { content: `second ${i}` });
    }
    await fake.waitForRequests(3, 15_000);
    const restart = async (stop: () => Promise<void>) => {
      await stop();
      hanging = false;
      await start();
    };
    const answered = async () => {
      for (const id of sessions) {
        const messages: Message[] = await waitFor(
          async () => {
            const list: Message[] = (await call('GET', `/v1/sessions/${id}/messages`)).messages;
            return list.length === 4 ? list : undefined;
          },
          { timeoutMs: 20_000, what: `both answers in ${id}` },
        );
        // Each message, then its one answer, in the order they were sent.
        expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
        expect(messages[1]!.metadata['turnId']).toBe(messages[0]!.metadata['turnId']);
        expect(messages[3]!.metadata['turnId']).toBe(messages[2]!.metadata['turnId']);
        expect(messages[1]!.content).toBe('Answered after the restart.');
      }
    };
    return { restart, answered };
  }

  it('answers every message cut by a SIGKILL', async () => {
    const { restart, answered } = await serve();
    await restart(async () => {
      baton!.child.kill('SIGKILL');
      await baton!.stop();
    });
    await answered();
  }, 60_000);

  it('answers every message cut by a SIGTERM, without a notice', async () => {
    const { restart, answered } = await serve();
    await restart(() => baton!.stop());
    await answered();
  }, 60_000);
});

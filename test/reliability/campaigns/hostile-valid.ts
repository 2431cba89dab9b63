/**
 * The accepted side of the hostile campaign: titles, messages, job names,
 * outputs and commands full of control characters, lone surrogates and
 * quoting, which must be stored and read back intact (a lone surrogate,
 * which UTF-8 cannot hold, as U+FFFD), and bytes that are not UTF-8 (in a
 * request body, in a command, in a job's output), which must be stored as
 * replacement characters without breaking anything.
 */

import type { TestServer } from '../../transport/helpers.js';
import { TOKENS } from '../../transport/helpers.js';
import { waitFor } from '../../support/wait.js';
import { get, list, str } from './api.js';
import { hostileText } from './hostile-gen.js';
import { rawRequest } from './raw-http.js';
import type { Rng } from './rng.js';

export interface ValidStats {
  requests: number;
  sent: number;
  intact: number;
  problems: string[];
  status5xx: number;
}

/** What UTF-8 can hold of a string: each lone surrogate becomes U+FFFD (String#toWellFormed). */
export function wellFormed(text: string): string {
  return text.replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    '\ufffd',
  );
}

const quote = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;

export async function storeValid(s: TestServer, r: Rng, n: number): Promise<ValidStats> {
  const stats: ValidStats = { requests: 0, sent: 0, intact: 0, problems: [], status5xx: 0 };
  const call = async (method: string, path: string, body?: unknown) => {
    stats.requests++;
    const reply = await s.call(method, path, body === undefined ? {} : { body });
    if (reply.status >= 500) stats.status5xx++;
    return reply;
  };
  const check = (what: string, sent: string, stored: unknown) => {
    stats.sent++;
    if (stored === wellFormed(sent)) stats.intact++;
    else if (stats.problems.length < 10)
      stats.problems.push(
        `${what}: sent ${JSON.stringify(sent)}, stored ${JSON.stringify(stored)}`,
      );
  };

  for (let i = 0; i < Math.ceil(n / 3); i++) {
    const title = hostileText(r, 200);
    const created = await call('POST', '/v1/sessions', {
      title,
      systemPrompt: hostileText(r, 500),
    });
    check(
      'title',
      title,
      get((await call('GET', `/v1/sessions/${str(created.body, 'id')}`)).body, 'title'),
    );
  }

  const room = str((await call('POST', '/v1/sessions', { title: 'hostile messages' })).body, 'id');
  const contents: string[] = [];
  for (let i = 0; i < Math.ceil(n / 3); i++) {
    const content = `${hostileText(r, 2000)}.`;
    contents.push(content);
    const sent = await call('POST', `/v1/sessions/${room}/messages`, { content });
    if (sent.status !== 202) stats.problems.push(`message: ${sent.status}`);
  }
  const stored = new Set(
    list((await call('GET', `/v1/sessions/${room}/messages`)).body, 'messages')
      .filter((m) => str(m, 'role') === 'user')
      .map((m) => str(m, 'content')),
  );
  for (const content of contents)
    check('message', content, stored.has(wellFormed(content)) ? wellFormed(content) : null);

  const jobs: { id: string; output: string }[] = [];
  for (let i = 0; i < Math.ceil(n / 6); i++) {
    const name = hostileText(r, 200);
    const job = await call('POST', `/v1/sessions/${room}/jobs`, { external: true, name });
    const id = str(job.body, 'id');
    check('job name', name, get((await call('GET', `/v1/jobs/${id}`)).body, 'name'));
    const output = hostileText(r, 2000);
    await call('POST', `/v1/jobs/${id}/complete`, { exitCode: 0, output });
    jobs.push({ id, output });
  }
  for (let i = 0; i < Math.min(30, Math.ceil(n / 20)); i++) {
    const value = hostileText(r, 300).replaceAll('\u0000', '');
    const job = await call('POST', `/v1/sessions/${room}/jobs`, {
      command: `printf %s ${quote(value)}`,
    });
    jobs.push({ id: str(job.body, 'id'), output: value });
  }
  for (const job of jobs) {
    const done = await waitFor(
      async () => {
        const view = (await s.call('GET', `/v1/jobs/${job.id}`)).body;
        return str(view, 'state') === 'followedUp' ? view : undefined;
      },
      { timeoutMs: 30_000, what: `job ${job.id} to be followed up` },
    );
    check('job output', job.output, get(done, 'output'));
  }

  await notUtf8(s, room, stats);
  return stats;
}

/** Bytes that are not UTF-8: in a request body, in a command, and in a job's output. */
async function notUtf8(s: TestServer, room: string, stats: ValidStats): Promise<void> {
  const port = Number(new URL(s.url).port);
  const headers = { authorization: `Bearer ${TOKENS.alice}`, 'content-type': 'application/json' };
  const raw = async (path: string, body: Buffer) => {
    stats.requests++;
    const reply = await rawRequest(false, port, { method: 'POST', path, headers, body });
    if (reply.status >= 500) stats.status5xx++;
    return JSON.parse(reply.text) as unknown;
  };
  const title = await raw(
    '/v1/sessions',
    Buffer.from([...Buffer.from('{"title":"a'), 0xff, 0xfe, ...Buffer.from('b"}')]),
  );
  check('raw title', 'a\ufffd\ufffdb', get(title, 'title'));
  const command = await raw(
    `/v1/sessions/${room}/jobs`,
    Buffer.from([...Buffer.from('{"command":"echo x'), 0xff, 0xc0, ...Buffer.from('y"}')]),
  );
  check('raw command', 'echo x\ufffd\ufffdy', get(command, 'command'));
  const printed = await s.call('POST', `/v1/sessions/${room}/jobs`, {
    body: { command: "printf 'A\\377\\376B\\300\\200C\\n'" },
  });
  stats.requests++;
  for (const [id, expected] of [
    [str(command, 'id'), 'x\ufffd\ufffdy\n'],
    [str(printed.body, 'id'), 'A\ufffd\ufffdB\ufffd\ufffdC\n'],
  ] as const) {
    const done = await waitFor(
      async () => {
        const view = (await s.call('GET', `/v1/jobs/${id}`)).body;
        return str(view, 'state') === 'followedUp' ? view : undefined;
      },
      { timeoutMs: 30_000, what: `job ${id} to be followed up` },
    );
    check('output that is not UTF-8', expected, get(done, 'output'));
  }

  function check(what: string, expected: string, stored: unknown): void {
    stats.sent++;
    if (stored === expected) stats.intact++;
    else
      stats.problems.push(
        `${what}: expected ${JSON.stringify(expected)}, stored ${JSON.stringify(stored)}`,
      );
  }
}

/**
 * Generators of hostile HTTP requests. `refused` ones must each get a 4xx
 * (the status given, or any 4xx when null) and change nothing stored;
 * `hostileText` makes valid strings full of control characters, lone
 * surrogates, direction overrides and quoting, which must be stored intact.
 */

import type { Rng } from './rng.js';

export interface HostileRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** The status it must get; null: any 4xx. */
  status: number | null;
  kind: string;
}

/** The resources the requests aim at: alice's (the caller's) and bob's (another owner's). */
export interface Targets {
  aliceToken: string;
  bobToken: string;
  aliceSession: string;
  /** An external job of alice that is running: a valid completion would change it. */
  aliceRunning: string;
  aliceDone: string;
  bobSession: string;
  bobRunning: string;
  bobDone: string;
}

const PIECES = [
  '\u0000',
  '\u0001',
  '\u0007',
  '\b',
  '\t',
  '\n',
  '\r',
  '\u001b[31m',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u200b',
  '\u200e',
  '\u202e',
  '\u2028',
  '\u2029',
  '\ufeff',
  '\ufffd',
  '\ud800',
  '\udfff',
  '\ud83d',
  '😀',
  '👩‍👩‍👧',
  'e\u0301',
  'Ω',
  '中文',
  'עברית',
  'ﷺ',
  '"',
  "'",
  '\\',
  '`',
  '$(id)',
  '${HOME}',
  '<script>alert(1)</script>',
  "'; DROP TABLE sessions; --",
  '%00',
  '%2e%2e%2f',
  '../..',
  '{{7*7}}',
  '\\u0000',
  '\\ud800',
  'null',
  'true',
  '[]',
  '{}',
  ' ',
  '  ',
];

/** A string of up to `max` UTF-16 units made of hostile pieces and random code points. */
export function hostileText(r: Rng, max: number): string {
  let text = '';
  const length = r.int(1, Math.min(max, 60));
  while (text.length < length) {
    text += r.chance(0.6) ? r.pick(PIECES) : String.fromCharCode(r.int(1, 0xffff));
  }
  return text.slice(0, max);
}

const JSON_HEADERS = { 'content-type': 'application/json' };

const MALFORMED = [
  '{',
  '}',
  '{"title":',
  '{"title": "x",}',
  "{'title': 'x'}",
  '{"title": undefined}',
  'nul',
  'tru',
  '[1, 2',
  '"unterminated',
  '{"a":1}{"b":2}',
  '{"content": "x"} trailing',
  '\u0000',
  '\ufeff{}x',
  '{"content": "\\x41"}',
  '{"content": "\\ud800\\"}',
  '{"a":NaN}',
  '{"a":-}',
  '--',
  '0x10',
  '01',
  '{"__proto__": }',
  '{,}',
  '[,]',
  ':',
  '{"a" "b"}',
];

/** Bodies past the 1 MiB limit, made once (each request picks one). */
const HUGE = [1024 * 1024 + 1, 1536 * 1024, 4 * 1024 * 1024].map((size) =>
  Buffer.from(JSON.stringify({ content: 'x'.repeat(size) })),
);

function auth(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A body that is not valid JSON: from a list, a cut valid one, or random bytes. */
function malformedBody(r: Rng): string | Buffer {
  const roll = r.next();
  if (roll < 0.5) return r.pick(MALFORMED);
  if (roll < 0.8) {
    const valid = JSON.stringify({ title: hostileText(r, 30), content: 'x', command: 'ls' });
    return valid.slice(0, r.int(1, valid.length - 1));
  }
  return Buffer.from(
    Array.from({ length: r.int(1, 64) }, () => r.int(0, 255))
      .concat([0x7b])
      .reverse(),
  );
}

/** A JSON value of a type that no field of the API accepts where it is put. */
function wrongValue(r: Rng, not: 'string' | 'number' | 'object'): unknown {
  const all: unknown[] = [
    1,
    -1,
    0.5,
    1e308,
    true,
    false,
    null,
    [],
    ['x'],
    { a: 1 },
    'text',
    '',
    '12',
    '1e999',
  ];
  const values = all.filter((v) =>
    not === 'string' ? typeof v !== 'string' : not === 'number' ? typeof v !== 'number' : true,
  );
  return r.pick(values);
}

/** A POST body each route must refuse with 400: wrong types, bad values, unknown fields. */
function invalidBody(r: Rng, route: 'session' | 'message' | 'job' | 'complete'): unknown {
  const unknown = { [`x${r.int(0, 9)}`]: hostileText(r, 10) };
  switch (route) {
    case 'session':
      return r.pick<unknown>([
        { title: wrongValue(r, 'string') },
        { systemPrompt: wrongValue(r, 'string') },
        { title: 'x'.repeat(201) },
        { ...unknown, title: hostileText(r, 50) },
        null,
        7,
        'title',
        [{ title: 'x' }],
      ]);
    case 'message':
      return r.pick<unknown>([
        {},
        { content: wrongValue(r, 'string') },
        { content: '' },
        { content: ' \n\t ' },
        { content: 'x'.repeat(256 * 1024 + 1) },
        { content: hostileText(r, 30), ...unknown },
        { content: hostileText(r, 30), turnId: 't_forged' },
        null,
        ['hello'],
      ]);
    case 'job':
      return r.pick<unknown>([
        {},
        { command: wrongValue(r, 'string') },
        { command: '' },
        { command: 'echo \u0000 nul' },
        { command: 'x'.repeat(16 * 1024 + 1) },
        { command: 'ls', timeoutS: wrongValue(r, 'number') },
        { command: 'ls', timeoutS: r.pick([0, -5, 1.5, 7 * 24 * 3600 + 1, 1e12]) },
        {
          command: 'ls',
          cwd: r.pick(['../../etc', '..', '/', '/etc', 'a/../../..', '', 'no/such', '\u0000']),
        },
        { command: 'ls', cwd: wrongValue(r, 'string') },
        { command: 'ls', timeout: 5 },
        { command: 'ls', external: true },
        { external: r.pick<unknown>([false, 'true', 1, null]) },
        { external: true, name: wrongValue(r, 'string') },
        { external: true, name: 'n'.repeat(201) },
        { external: true, ...unknown },
      ]);
    case 'complete':
      return r.pick<unknown>([
        {},
        { exitCode: wrongValue(r, 'number') },
        { exitCode: r.pick([0.5, 2 ** 31, -(2 ** 31) - 1, 1e308]) },
        { exitCode: 0, outcome: r.pick(['cancelled', 'ok', '', 'SUCCEEDED', 7]) },
        { exitCode: 0, output: wrongValue(r, 'string') },
        { exitCode: 0, output: 'o'.repeat(512 * 1024 + 1) },
        { exitCode: 0, ...unknown },
        null,
        [0],
      ]);
  }
}

/** Every byte of the text's UTF-8 as %XX (encodeURIComponent throws on a lone surrogate). */
function percent(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

/** An id that names nothing: random, hostile, encoded traversal, or very long. */
function strayId(r: Rng): string {
  return r.pick([
    `s_${r.int(0, 1e9)}`,
    percent(hostileText(r, 20)),
    '..%2F..%2Fetc%2Fpasswd',
    '%2e%2e',
    'x'.repeat(r.int(50, 2000)),
    '%00',
    '%F0%9F%98%80',
    '%ff%fe',
  ]);
}

/** One request that must be refused; `n` spreads the kinds evenly. */
export function refusedRequest(r: Rng, t: Targets, n: number): HostileRequest {
  const a = auth(t.aliceToken);
  const json = { ...a, ...JSON_HEADERS };
  const s = t.aliceSession;
  switch (n % 12) {
    case 0: {
      const path = r.pick([
        '/v1/sessions',
        `/v1/sessions/${s}/messages`,
        `/v1/sessions/${s}/jobs`,
        `/v1/jobs/${t.aliceRunning}/complete`,
        `/v1/jobs/${t.aliceRunning}/cancel`,
        `/v1/jobs/${t.aliceDone}/retry`,
      ]);
      return {
        method: 'POST',
        path,
        headers: json,
        body: malformedBody(r),
        status: 400,
        kind: 'malformed JSON',
      };
    }
    case 1:
      return {
        method: 'POST',
        path: '/v1/sessions',
        headers: json,
        body: JSON.stringify(invalidBody(r, 'session')),
        status: 400,
        kind: 'wrong types',
      };
    case 2:
      return {
        method: 'POST',
        path: `/v1/sessions/${s}/messages`,
        headers: json,
        body: JSON.stringify(invalidBody(r, 'message')),
        status: null,
        kind: 'wrong types',
      };
    case 3:
      return {
        method: 'POST',
        path: `/v1/sessions/${s}/jobs`,
        headers: json,
        body: JSON.stringify(invalidBody(r, 'job')),
        status: 400,
        kind: 'wrong types',
      };
    case 4:
      return {
        method: 'POST',
        path: `/v1/jobs/${t.aliceRunning}/complete`,
        headers: json,
        body: JSON.stringify(invalidBody(r, 'complete')),
        status: null,
        kind: 'wrong types',
      };
    case 5: {
      // Another owner's resources, through every route: exactly like ids that do not exist.
      const route = r.pick([
        ['GET', `/v1/sessions/${t.bobSession}`],
        ['DELETE', `/v1/sessions/${t.bobSession}`],
        ['GET', `/v1/sessions/${t.bobSession}/messages`],
        ['POST', `/v1/sessions/${t.bobSession}/messages`, { content: 'hi' }],
        ['POST', `/v1/sessions/${t.bobSession}/jobs`, { external: true }],
        ['POST', `/v1/jobs/${t.bobRunning}/complete`, { exitCode: 0 }],
        ['POST', `/v1/jobs/${t.bobRunning}/cancel`],
        ['POST', `/v1/jobs/${t.bobDone}/retry`],
        ['GET', `/v1/jobs/${t.bobDone}`],
        ['GET', `/v1/jobs?sessionId=${t.bobSession}`],
      ] as const);
      const body = route[2] === undefined ? undefined : JSON.stringify(route[2]);
      return {
        method: route[0],
        path: route[1],
        headers: body ? json : a,
        ...(body ? { body } : {}),
        status: 404,
        kind: "another owner's ids",
      };
    }
    case 6: {
      const id = strayId(r);
      const route = r.pick([
        ['GET', `/v1/sessions/${id}`],
        ['DELETE', `/v1/sessions/${id}`],
        ['GET', `/v1/jobs/${id}`],
        ['POST', `/v1/jobs/${id}/cancel`],
        ['POST', `/v1/sessions/${id}/messages`],
      ] as const);
      const body =
        route[0] === 'POST' && route[1].endsWith('messages')
          ? JSON.stringify({ content: 'x' })
          : undefined;
      return {
        method: route[0],
        path: route[1],
        headers: body ? json : a,
        ...(body ? { body } : {}),
        status: null,
        kind: 'unknown ids',
      };
    }
    case 7: {
      // No token, a wrong one, or a malformed header, on writes that would otherwise succeed.
      const header = r.pick<Record<string, string>>([
        {},
        auth('nope'),
        auth(`${t.aliceToken}x`),
        { authorization: t.aliceToken },
        { authorization: `Basic ${t.aliceToken}` },
        auth(t.aliceToken.toUpperCase()),
        { authorization: `Bearer ${hostileText(r, 40).replace(/[^\x20-\x7e]/g, '')}` },
      ]);
      const route = r.pick([
        ['POST', '/v1/sessions', {}],
        ['POST', `/v1/sessions/${s}/messages`, { content: 'hi' }],
        ['POST', `/v1/sessions/${s}/jobs`, { external: true }],
        ['DELETE', `/v1/sessions/${s}`, undefined],
        ['POST', `/v1/jobs/${t.aliceRunning}/complete`, { exitCode: 0 }],
      ] as const);
      const body = route[2] === undefined ? undefined : JSON.stringify(route[2]);
      return {
        method: route[0],
        path: route[1],
        headers: { ...header, ...(body ? JSON_HEADERS : {}) },
        ...(body ? { body } : {}),
        status: 401,
        kind: 'bad tokens',
      };
    }
    case 8: {
      const type = r.pick([
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/jsonx',
        'text/json',
      ]);
      return {
        method: 'POST',
        path: '/v1/sessions',
        headers: { ...a, 'content-type': type },
        body: '{"title":"x"}',
        status: 415,
        kind: 'content types',
      };
    }
    case 9: {
      const path = r.pick(['/v1/sessions', `/v1/sessions/${s}/messages`, `/v1/sessions/${s}/jobs`]);
      return {
        method: 'POST',
        path,
        headers: json,
        body: r.pick(HUGE),
        status: 413,
        kind: 'huge bodies',
      };
    }
    case 10: {
      const route = r.pick([
        ['PUT', '/v1/sessions'],
        ['PATCH', `/v1/sessions/${s}`],
        ['POST', `/v1/jobs/${t.aliceDone}`],
        ['DELETE', `/v1/jobs/${t.aliceDone}`],
        ['POST', '/v1/machines'],
        ['GET', '/v1/../etc/passwd'],
        ['GET', '/v1/sessions/%2e%2e/%2e%2e'],
        ['GET', '/v1/jobs?state=nope'],
        ['GET', `/v1/jobs?sessionId=${'s'.repeat(101)}`],
        ['GET', `/v1/jobs?state=${percent(hostileText(r, 10))}`],
      ] as const);
      return {
        method: route[0],
        path: route[1],
        headers: a,
        status: null,
        kind: 'methods, paths and queries',
      };
    }
    default: {
      // A deeply nested body: valid JSON that no route accepts.
      const depth = r.int(1000, 100_000);
      return {
        method: 'POST',
        path: '/v1/sessions',
        headers: json,
        body: '['.repeat(depth) + ']'.repeat(depth),
        status: 400,
        kind: 'deep nesting',
      };
    }
  }
}

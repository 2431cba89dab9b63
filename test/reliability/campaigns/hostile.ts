/**
 * Campaign 4, hostile input: a real server (buildApp on port 0, two owners)
 * under thousands of refused requests (malformed JSON, wrong types, huge
 * bodies, control characters, traversal in `cwd`, other owners' ids, bad
 * tokens, content types, methods), bad WebSocket frames and floods of
 * connections; then hostile values that are valid, and output that is not
 * UTF-8. No 5xx, no crash, no other owner's data, and the refused requests
 * leave the store exactly as it was.
 */

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../transport/helpers.js';
import { TOKENS } from '../../transport/helpers.js';
import { waitFor } from '../../support/wait.js';
import { get, str } from './api.js';
import { refusedRequest, type Targets } from './hostile-gen.js';
import { flood, hostileFrames, type FloodStats, type WsStats } from './hostile-ws.js';
import { storeValid } from './hostile-valid.js';
import { pool, rawAgent, rawRequest } from './raw-http.js';
import { rng } from './rng.js';

export const BOB_SECRET = 'BOB-SECRET-7f3a9c';

export interface HostileSize {
  refused: number;
  wsConnections: number;
  framesPerConnection: number;
  valid: number;
  flood: { requests: number; sockets: number; idle: number };
  seed: number;
}

export interface HostileSummary {
  requests: number;
  frames: number;
  refused: number;
  /** Refused requests answered otherwise than expected (first few). */
  wrongStatus: string[];
  status5xx: number;
  byKind: Record<string, number>;
  /** Answers to alice that carried bob's secret. */
  leaks: number;
  storeChanged: boolean;
  ws: WsStats;
  valid: { sent: number; intact: number; problems: string[] };
  flood: FloodStats;
  healthy: boolean;
  integrity: string;
}

/** Everything stored for both owners, as one comparable text. */
async function snapshot(s: TestServer): Promise<string> {
  const store = s.t.store;
  const parts: unknown[] = [];
  for (const owner of ['alice', 'bob']) {
    const sessions = await store.listSessions(owner);
    const messages = await Promise.all(sessions.map((x) => store.listMessages(x.id)));
    const jobs = await store.listJobs({ owner });
    parts.push(sessions, messages, jobs, await store.readEvents(owner, 0, 1_000_000));
  }
  return JSON.stringify(parts);
}

async function setUp(s: TestServer): Promise<Targets> {
  const call = async (token: string, method: string, path: string, body?: unknown) =>
    (await s.call(method, path, { token, ...(body === undefined ? {} : { body }) })).body;
  const alice = str(
    await call(TOKENS.alice, 'POST', '/v1/sessions', { title: 'alice-home' }),
    'id',
  );
  const bob = str(
    await call(TOKENS.bob, 'POST', '/v1/sessions', { title: BOB_SECRET, systemPrompt: BOB_SECRET }),
    'id',
  );
  await call(TOKENS.bob, 'POST', `/v1/sessions/${bob}/messages`, {
    content: `hello ${BOB_SECRET}`,
  });
  const ids = {
    aliceRunning: str(
      await call(TOKENS.alice, 'POST', `/v1/sessions/${alice}/jobs`, {
        external: true,
        name: 'a-ext',
      }),
      'id',
    ),
    aliceDone: str(
      await call(TOKENS.alice, 'POST', `/v1/sessions/${alice}/jobs`, {
        command: 'echo alice-done',
      }),
      'id',
    ),
    bobRunning: str(
      await call(TOKENS.bob, 'POST', `/v1/sessions/${bob}/jobs`, {
        external: true,
        name: BOB_SECRET,
      }),
      'id',
    ),
    bobDone: str(
      await call(TOKENS.bob, 'POST', `/v1/sessions/${bob}/jobs`, { command: `echo ${BOB_SECRET}` }),
      'id',
    ),
  };
  await quiet(s);
  return {
    aliceToken: TOKENS.alice,
    bobToken: TOKENS.bob,
    aliceSession: alice,
    bobSession: bob,
    ...ids,
  };
}

/** Waits until no job is on its way, no session is locked and every queued write is stored. */
export async function quiet(s: TestServer): Promise<void> {
  await waitFor(
    async () => {
      for (const owner of ['alice', 'bob']) {
        const open = await s.t.store.listJobs({ owner, unfinished: true });
        if (open.some((j) => !(j.external && j.state === 'running'))) return false;
        for (const session of await s.t.store.listSessions(owner)) {
          if ((await s.t.baton.getSession(owner, session.id)).lock?.lock !== 'idle') return false;
        }
      }
      return true;
    },
    { timeoutMs: 20_000, what: 'the server to be quiet' },
  );
  // The lock turns idle in memory one write before its event is stored.
  await s.t.baton.settled();
}

export async function runHostile(size: HostileSize): Promise<HostileSummary> {
  const r = rng(size.seed);
  const s = await startServer();
  const port = Number(new URL(s.url).port);
  const agent = rawAgent(16);
  try {
    const targets = await setUp(s);
    const before = await snapshot(s);
    const byKind: Record<string, number> = {};
    const wrongStatus: string[] = [];
    let status5xx = 0;
    let leaks = 0;
    const requests = Array.from({ length: size.refused }, (_, n) => refusedRequest(r, targets, n));
    await pool(
      requests.map((req) => async () => {
        byKind[req.kind] = (byKind[req.kind] ?? 0) + 1;
        const reply = await rawRequest(agent, port, req);
        if (reply.status >= 500) status5xx++;
        if (reply.text.includes(BOB_SECRET)) leaks++;
        const ok =
          req.status === null
            ? reply.status >= 400 && reply.status < 500
            : reply.status === req.status;
        if (!ok && wrongStatus.length < 10) {
          wrongStatus.push(
            `${req.kind}: ${req.method} ${req.path.slice(0, 80)} ${String(req.body ?? '').slice(0, 80)} -> ${reply.status} ${reply.text.slice(0, 120)}`,
          );
        }
      }),
      16,
    );
    const { stats: ws, clients } = await hostileFrames(
      s.wsUrl,
      targets,
      r,
      size.wsConnections,
      size.framesPerConnection,
    );
    const storeChanged = (await snapshot(s)) !== before;

    // Bob talks while alice's connections (some subscribed to bob's session) listen.
    await s.call('POST', `/v1/sessions/${targets.bobSession}/messages`, {
      token: TOKENS.bob,
      body: { content: `again ${BOB_SECRET}` },
    });
    const valid = await storeValid(s, r, size.valid);
    await quiet(s);
    for (const client of clients) {
      for (const frame of client.frames) {
        if (
          JSON.stringify(frame).includes(BOB_SECRET) ||
          (frame['sessionId'] === targets.bobSession && frame['seq'] !== undefined)
        )
          leaks++;
      }
      client.close();
    }
    const flooded = await flood(port, TOKENS.alice, size.flood);
    const health = await fetch(`${s.url}/healthz`);
    const db = new Database(join(s.t.dir, 'baton.db'), { readonly: true });
    const integrity = String(db.pragma('integrity_check', { simple: true }));
    db.close();
    return {
      requests:
        size.refused +
        ws.upgrades +
        valid.requests +
        flooded.requests +
        flooded.sockets +
        flooded.idle,
      frames: ws.frames,
      refused: size.refused,
      wrongStatus,
      status5xx: status5xx + valid.status5xx,
      byKind,
      leaks,
      storeChanged,
      ws,
      valid: { sent: valid.sent, intact: valid.intact, problems: valid.problems },
      flood: flooded,
      healthy: health.status === 200 && get(await health.json(), 'ok') === true,
      integrity,
    };
  } finally {
    agent.destroy();
    await s.close();
  }
}

/** The campaign's one-line summary (printed last). */
export function hostileSummaryLine(h: HostileSummary): string {
  return (
    `hostile: ${h.requests} requests and ${h.frames} WebSocket frames (${h.refused} refused: ` +
    `${Object.entries(h.byKind)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}), ${h.status5xx} 5xx, ` +
    `${h.wrongStatus.length} wrong statuses, ${h.leaks} leaks of another owner's data, store ` +
    `${h.storeChanged ? 'CHANGED' : 'unchanged'} by refused requests, ${h.ws.unanswered} bad frames unanswered, ` +
    `${h.valid.intact}/${h.valid.sent} hostile values stored intact, flood: ${h.flood.ok}/${h.flood.requests} ` +
    `requests answered and ${h.flood.opened}/${h.flood.sockets} sockets opened beside ${h.flood.idle} idle ones, ` +
    `integrity ${h.integrity}, ${h.healthy ? 'still healthy' : 'NOT HEALTHY'}`
  );
}

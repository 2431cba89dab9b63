/**
 * The WebSocket side of the hostile campaign: bad frames on open feed
 * connections (each must be answered, and the connection must stay open),
 * an oversized frame, refused upgrades, and floods of connections.
 */

import { connect } from 'node:net';
import WebSocket from 'ws';
import { FeedClient, type Frame } from '../../transport/helpers.js';
import { hostileText, type Targets } from './hostile-gen.js';
import { pool, rawRequest } from './raw-http.js';
import type { Rng } from './rng.js';

export interface WsStats {
  frames: number;
  /** Bad or odd frames that got no answer, and connections that closed under them. */
  unanswered: number;
  closed: number;
  upgrades: number;
  /** Refused upgrades that did not get the expected status. */
  upgradeWrong: string[];
  /** Whether the oversized frame closed its connection with 1009. */
  oversizedClosed: boolean;
}

const CONTROL = new Set(['error', 'pong', 'subscribed']);

function badFrame(r: Rng, t: Targets): string | Buffer {
  return r.pick<string | Buffer>([
    '{',
    'nul',
    '',
    '[]',
    'null',
    '"ping"',
    JSON.stringify(hostileText(r, 40)),
    Buffer.from([0, 1, 2, 255]),
    '{"type":"nope"}',
    '{"type":"ping","extra":1}',
    '{"type":"subscribe","sessionIds":"x"}',
    '{"type":"subscribe","sessionIds":[1,2]}',
    '{"type":"subscribe"}',
    '{"type":"subscribe","sessionIds":[""]}',
    JSON.stringify({
      type: 'subscribe',
      sessionIds: Array.from({ length: 1001 }, (_, i) => `s${i}`),
    }),
    JSON.stringify({ type: 'subscribe', sessionIds: [t.bobSession] }),
    JSON.stringify({ type: 'subscribe', sessionIds: [] }),
    '{"type":"ping"}',
    JSON.stringify({ type: hostileText(r, 20) }),
  ]);
}

/** Control answers (error, pong, subscribed) a client has received. */
export function controlFrames(client: FeedClient): Frame[] {
  return client.frames.filter(
    (f) => typeof f['type'] === 'string' && CONTROL.has(f['type']) && f['seq'] === undefined,
  );
}

/** Opens `connections` alice feeds and sends each `perConnection` bad frames; returns them still open. */
export async function hostileFrames(
  wsUrl: string,
  t: Targets,
  r: Rng,
  connections: number,
  perConnection: number,
): Promise<{ stats: WsStats; clients: FeedClient[] }> {
  const stats: WsStats = {
    frames: 0,
    unanswered: 0,
    closed: 0,
    upgrades: 0,
    upgradeWrong: [],
    oversizedClosed: false,
  };
  const clients = await Promise.all(
    Array.from({ length: connections }, async (_, i) => {
      const client = new FeedClient(
        `${wsUrl}/v1/events?token=${t.aliceToken}${i % 2 ? '&since=0' : ''}`,
      );
      await client.opened;
      return client;
    }),
  );
  await Promise.all(
    clients.map(async (client) => {
      for (let k = 0; k < perConnection; k++) {
        client.ws.send(badFrame(r, t));
        stats.frames++;
      }
      try {
        await client.until(() => controlFrames(client).length >= perConnection, 10_000);
      } catch {
        stats.unanswered += perConnection - controlFrames(client).length;
      }
      if (client.ws.readyState !== WebSocket.OPEN) stats.closed++;
    }),
  );
  // A frame past the 64 KiB limit closes its connection (1009), and only that one.
  const big = new FeedClient(`${wsUrl}/v1/events?token=${t.aliceToken}`);
  await big.opened;
  big.ws.send('x'.repeat(70 * 1024));
  stats.frames++;
  stats.oversizedClosed = (await big.closed).code === 1009;
  const port = Number(new URL(wsUrl).port);
  const upgrades: [string, number][] = [
    [`/v1/events?token=nope`, 401],
    [`/v1/events`, 401],
    [`/v1/events?token=${t.aliceToken}&since=abc`, 400],
    [`/v1/events?token=${t.aliceToken}&since=-1`, 400],
    [`/v1/events?token=${t.aliceToken}&since=1e3`, 400],
    [`/v1/events?token=${t.aliceToken}&sessionId=${'s'.repeat(101)}`, 400],
    [`/v1/eventsx?token=${t.aliceToken}`, 404],
  ];
  for (const [path, status] of upgrades) {
    stats.upgrades++;
    const reply = await rawRequest(false, port, {
      method: 'GET',
      path,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    if (reply.status !== status) stats.upgradeWrong.push(`${path}: ${reply.status}`);
  }
  return { stats, clients };
}

export interface FloodStats {
  requests: number;
  ok: number;
  sockets: number;
  opened: number;
  idle: number;
}

/**
 * Many plain HTTP connections at once (no keep-alive), many WebSocket
 * connections at once, and idle sockets that never finish their headers,
 * all at the same time.
 */
export async function flood(
  port: number,
  token: string,
  size: { requests: number; sockets: number; idle: number },
): Promise<FloodStats> {
  const idle = Array.from({ length: size.idle }, () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET /v1/sessions HTTP/1.1\r\nHost: x\r\n');
    return socket;
  });
  const requests = pool(
    Array.from(
      { length: size.requests },
      () => () =>
        rawRequest(false, port, {
          method: 'GET',
          path: '/v1/sessions',
          headers: { authorization: `Bearer ${token}` },
        }).catch(() => ({ status: 0, text: '' })),
    ),
    200,
  );
  const sockets = Promise.all(
    Array.from({ length: size.sockets }, async () => {
      const client = new FeedClient(`ws://127.0.0.1:${port}/v1/events?token=${token}`);
      const opened = await client.opened.then(
        () => true,
        () => false,
      );
      client.close();
      return opened;
    }),
  );
  const [answers, opened] = await Promise.all([requests, sockets]);
  for (const socket of idle) socket.destroy();
  return {
    requests: size.requests,
    ok: answers.filter((a) => a.status === 200).length,
    sockets: size.sockets,
    opened: opened.filter(Boolean).length,
    idle: size.idle,
  };
}

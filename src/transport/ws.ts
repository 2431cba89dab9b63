/**
 * The WebSocket event feed: `GET /v1/events?token=…[&since=SEQ][&sessionId=…]`
 * (SPEC §6). Upgrades are handled on the HTTP server's `upgrade` event, so a
 * request without a valid token is refused with a plain HTTP 401 before any
 * WebSocket exists.
 */

import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Baton } from '../runtime/system.js';
import type { TokenAuth } from './auth.js';
import { errorReply, ERROR_TABLE, type ErrorLogger, type ErrorReply } from './errors.js';
import { FeedConnection } from './feed-connection.js';
import type { TransportMetrics } from './metrics.js';

/** Path of the feed. */
export const EVENTS_PATH = '/v1/events';

/** Tuning of the feed; every field has a default. */
export interface EventFeedOptions {
  /** Server pings this often and drops clients that did not answer the last one; 0 disables. @defaultValue 30000 */
  heartbeatMs?: number;
  /** A client whose unsent bytes pass this is closed with 4008. @defaultValue 4 MiB */
  maxBufferedBytes?: number;
  /** Events per store read while replaying. @defaultValue 500 */
  pageSize?: number;
  /** Largest client frame accepted, in bytes (larger closes with 1009). @defaultValue 64 KiB */
  maxPayload?: number;
  /** How long shutdown waits for clients to answer the close before dropping them. @defaultValue 1000 */
  closeGraceMs?: number;
}

/** What the feed needs from the app. */
export interface EventFeedDeps {
  baton: Baton;
  auth: TokenAuth;
  metrics: TransportMetrics;
  logger?: ErrorLogger & { warn(obj: object, msg?: string): void };
}

/** The query of an upgrade request, validated. */
export interface FeedQuery {
  owner: string;
  since: number | null;
  sessionId: string | null;
}

/**
 * Reads and checks an upgrade request; an {@link ErrorReply} says why it is refused.
 * The token comes from `?token=`, or from an `Authorization: Bearer` header
 * for clients that can set one.
 */
export function readFeedQuery(req: IncomingMessage, auth: TokenAuth): FeedQuery | ErrorReply {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== EVENTS_PATH) return errorReply('not_found', `no route ${url.pathname}`);
  const owner =
    auth.ownerOf(url.searchParams.get('token')) ?? auth.ownerOfHeader(req.headers.authorization);
  if (!owner) return errorReply('unauthorized', 'a valid token is needed: ?token=…');
  const rawSince = url.searchParams.get('since');
  let since: number | null = null;
  if (rawSince !== null && rawSince !== '') {
    since = /^\d{1,15}$/.test(rawSince) ? Number(rawSince) : NaN;
    if (!Number.isSafeInteger(since)) {
      return errorReply('invalid_request', 'since must be a non-negative integer (a seq)');
    }
  }
  const sessionId = url.searchParams.get('sessionId') || null;
  if (sessionId !== null && sessionId.length > 100) {
    return errorReply('invalid_request', 'sessionId is too long');
  }
  return { owner, since, sessionId };
}

function refuse(socket: Duplex, reply: ErrorReply): void {
  const body = JSON.stringify(reply.body);
  socket.end(
    `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? 'Error'}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Attaches the feed to the app's HTTP server. Shutdown (`app.close()`)
 * refuses new upgrades, closes every client with 1001 and drops those that
 * do not answer within the grace time.
 */
export function attachEventFeed(
  app: FastifyInstance,
  deps: EventFeedDeps,
  options: EventFeedOptions = {},
): void {
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  const closeGraceMs = options.closeGraceMs ?? 1000;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? 64 * 1024 });
  const alive = new WeakMap<WebSocket, boolean>();
  let closing = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A client that resets mid-handshake must not crash the process.
    socket.on('error', () => socket.destroy());
    if (closing) return refuse(socket, errorReply('shutting_down', 'the service is shutting down'));
    const query = readFeedQuery(req, deps.auth);
    if ('body' in query) return refuse(socket, query);
    wss.handleUpgrade(req, socket, head, (ws) => {
      alive.set(ws, true);
      ws.on('pong', () => alive.set(ws, true));
      ws.on('error', (error) => deps.logger?.warn({ err: error }, 'feed socket error'));
      deps.metrics.feedClients.inc();
      ws.once('close', () => deps.metrics.feedClients.dec());
      const connection = new FeedConnection(ws, {
        owner: query.owner,
        since: query.since,
        sessionIds: query.sessionId ? [query.sessionId] : null,
        feed: deps.baton.feed,
        store: deps.baton.store,
        pageSize: options.pageSize,
        maxBufferedBytes: options.maxBufferedBytes,
        drainTimeoutMs: heartbeatMs > 0 ? heartbeatMs : undefined,
        onSlowConsumer: () => deps.metrics.slowConsumerCloses.inc(),
        logger: deps.logger,
      });
      void connection.start();
    });
  };
  app.server.on('upgrade', onUpgrade);

  const heartbeat =
    heartbeatMs > 0
      ? setInterval(() => {
          for (const ws of wss.clients) {
            // No pong since the last ping: the peer is gone without a FIN.
            if (alive.get(ws) === false) {
              ws.terminate();
              continue;
            }
            alive.set(ws, false);
            ws.ping();
          }
        }, heartbeatMs)
      : null;
  heartbeat?.unref();

  app.addHook('preClose', async () => {
    closing = true;
    if (heartbeat) clearInterval(heartbeat);
    const open = [...wss.clients];
    const closed = open.map(
      (ws) =>
        new Promise<void>((resolve) =>
          ws.readyState === ws.CLOSED ? resolve() : ws.once('close', () => resolve()),
        ),
    );
    for (const ws of open) ws.close(ERROR_TABLE.shutting_down.wsClose, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, closeGraceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const ws of wss.clients) ws.terminate();
  });
  app.addHook('onClose', async () => {
    app.server.off('upgrade', onUpgrade);
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
}

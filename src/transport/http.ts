/**
 * The HTTP API (SPEC §5) and the event feed on one fastify instance.
 * `buildApp` returns the server without listening: the CLI listens, tests
 * listen on port 0.
 */

import { describeSandbox } from '../runtime/sandbox/sandbox-config.js';
import { readFileSync } from 'node:fs';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Baton } from '../runtime/system.js';
import { metricsAccess, type TokenAuth } from './auth.js';
import { closeConnectionsOnClose } from './close-connections.js';
import { TransportError, toErrorReply, type ApiErrorCode } from './errors.js';
import { createMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { jobRoutes } from './routes/jobs.js';
import { sessionRoutes } from './routes/sessions.js';
import { findStaticFile, sendStaticFile } from './static.js';
import { attachEventFeed, EVENTS_PATH, type EventFeedOptions } from './ws.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The owner of the request's token; set for every authenticated route. */
    owner: string;
  }
}

/** Largest request body accepted. @defaultValue 1 MiB */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** What {@link buildApp} is built from. */
export interface AppDeps {
  baton: Baton;
  auth: TokenAuth;
  /** A pino logger (any pino `Logger` fits), or false for none. @defaultValue false */
  logger?: FastifyBaseLogger | false;
  /** Serves `GET /v1/machines`; without it that route is 404. */
  machines?: () => unknown;
  /** Directory of the dashboard, served at `/`. */
  publicDir?: string;
  /** Address of the Stately inspector when `--inspect` is on (shown by `GET /v1/info`). */
  inspectUrl?: string;
  /** Largest request body in bytes. @defaultValue {@link DEFAULT_BODY_LIMIT} */
  bodyLimit?: number;
  /** Heartbeat and back-pressure of the event feed. */
  feed?: EventFeedOptions;
  /** Who may read `/metrics`. @defaultValue {@link metricsAccess} without a metrics token */
  metricsAccess?: (header: string | string[] | undefined) => boolean;
}

// Paths under /v1 that need no token: the API's own description.
const OPEN_PATHS = new Set(['/v1/openapi.json']);

/** The package version, read once (src/ and dist/ both sit one level below the package root). */
export const VERSION = ((): string => {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const pkg: unknown = JSON.parse(text);
    const version = typeof pkg === 'object' && pkg !== null ? Reflect.get(pkg, 'version') : null;
    return typeof version === 'string' ? version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/**
 * Builds the app: every route of SPEC §5, `/metrics`, `/v1/openapi.json`,
 * the dashboard's files and the WebSocket feed. Routes only validate, call
 * the runtime and map its errors through the one table in `errors.ts`.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { baton, auth } = deps;
  const app: FastifyInstance = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: deps.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Each request is logged once, by the onResponse hook below, at debug level.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's own 503 body is not our error shape; the hook below answers instead.
    return503OnClosing: false,
    // Errors raised before routing (a malformed URL, an over-long id) get our shape too.
    frameworkErrors: (error: Error, _request: FastifyRequest, reply: FastifyReply) => {
      const { status, body } = toErrorReply(error);
      void reply.code(status).send(body);
    },
  });
  const log = deps.logger || undefined;
  const metrics = createMetrics(baton, VERSION);
  const canReadMetrics = deps.metricsAccess ?? metricsAccess(auth, null);

  // JSON is the only body type. An empty body is "no body", so that a bare
  // `POST /v1/jobs/:id/cancel` with a JSON content type is fine.
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    // The default parser answers through `done`; what it returns carries nothing more.
    void parseJson(request, text, done);
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  closeConnectionsOnClose(app);

  app.decorateRequest('owner', '');
  app.addHook('onRequest', async (request) => {
    if (closing) throw new TransportError('shutting_down', 'the service is shutting down');
    // Decided by the matched route, not the raw URL, so that no spelling of a
    // path (absolute-form, encoded) reaches a route without its token check.
    // Unmatched /v1 paths ask for a token too, so that 401 comes before 404.
    const route = request.routeOptions.url ?? request.url.split('?', 1)[0] ?? '';
    if (route === '/metrics') {
      if (!canReadMetrics(request.headers.authorization)) {
        throw new TransportError(
          'unauthorized',
          'GET /metrics needs the metrics token (--metrics-token), or the token of a single-owner server',
        );
      }
      return;
    }
    const needsToken = route.startsWith('/v1/') && !OPEN_PATHS.has(route) && route !== EVENTS_PATH;
    if (!needsToken) return;
    const owner = auth.ownerOfHeader(request.headers.authorization);
    if (!owner) {
      throw new TransportError('unauthorized', 'send Authorization: Bearer <token>');
    }
    request.owner = owner;
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    request.log.debug(
      { method: request.method, url: request.url, status: reply.statusCode },
      'request',
    );
  });
  app.addHook('onClose', async () => metrics.close());

  app.setErrorHandler((error, request, reply) => {
    const { status, body } = toErrorReply(error, log ?? undefined);
    if (status >= 500) request.log.warn({ code: body.error.code }, body.error.message);
    if (body.error.code === 'unauthorized') reply.header('www-authenticate', 'Bearer');
    return reply.code(status).send(body);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '/';
    const isApi = path.startsWith('/v1/') || path === '/v1' || path === '/metrics';
    if (deps.publicDir && !isApi && (request.method === 'GET' || request.method === 'HEAD')) {
      const file = await findStaticFile(deps.publicDir, path);
      if (file) return sendStaticFile(reply, file, request.method === 'HEAD');
    }
    const code: ApiErrorCode = 'not_found';
    throw new TransportError(code, `no route ${request.method} ${path}`);
  });

  app.get('/healthz', async () => ({ ok: true }));

  sessionRoutes(app, baton);
  jobRoutes(app, baton);

  app.get('/v1/machines', async () => {
    if (!deps.machines) {
      throw new TransportError('not_found', 'machine definitions are not available');
    }
    return deps.machines();
  });
  app.get('/v1/info', async (request) => ({
    version: VERSION,
    owner: request.owner,
    agent: { kind: baton.agent.kind, model: baton.agent.model },
    sandbox: describeSandbox(baton.sandbox.config),
    inspectUrl: deps.inspectUrl ?? null,
  }));
  const openApi = openApiDocument(VERSION);
  app.get('/v1/openapi.json', async () => openApi);
  app.get('/metrics', async (_request, reply) =>
    reply
      .header('content-type', metrics.registry.contentType)
      .send(await metrics.registry.metrics()),
  );
  // A plain GET (no Upgrade header) of the feed: say what to do instead of 404.
  app.get(EVENTS_PATH, async (_request, reply) => {
    reply.header('upgrade', 'websocket');
    throw new TransportError('upgrade_required', 'connect with a WebSocket client');
  });

  attachEventFeed(app, { baton, auth, metrics, ...(log ? { logger: log } : {}) }, deps.feed);
  await app.ready();
  return app;
}

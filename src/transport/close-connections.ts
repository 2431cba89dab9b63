/**
 * Keep-alive connections must not hold a closing server open. Node's
 * `server.close()` (which fastify's `close()` calls) ends only the
 * connections idle at that instant; a connection whose request was still
 * being answered goes idle afterwards and is kept until the client drops it
 * or the keep-alive timeout (72 s in fastify) ends it, and `close()` waits
 * that long. A `baton serve` stopped by SIGTERM under load then hit its 30 s
 * shutdown deadline and exited 1.
 */

import type { FastifyInstance } from 'fastify';

/** How often idle connections are ended while the server closes, ms. */
const SWEEP_MS = 50;

/**
 * From the start of `app.close()` on: every response says
 * `Connection: close` (the client does not send another request on it), and
 * connections that have gone idle are ended until the server has closed.
 */
export function closeConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    // Polled: Node says when a connection goes idle to no listener.
    const sweep = setInterval(() => app.server.closeIdleConnections(), SWEEP_MS);
    sweep.unref();
    app.server.once('close', () => clearInterval(sweep));
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
}

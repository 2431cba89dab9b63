import { connect, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { startServer, TOKENS, type TestServer } from './helpers.js';

let server: TestServer | null = null;
afterEach(async () => {
  await server?.t.close();
  server = null;
});

/** Resolves with everything the server wrote once it ends the connection. */
function ended(socket: Socket): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return new Promise((resolve) => socket.once('close', () => resolve(text)));
}

// Found by the cluster campaign: a SIGTERM while a request was in flight on a
// keep-alive connection made `baton serve` hit its 30 s shutdown deadline and
// exit 1. Node's server.close() ends only the connections idle at that
// instant; this one went idle after it and was kept (fastify's keep-alive
// timeout is 72 s), so app.close() waited for it.
it('app.close() ends a keep-alive connection whose request was in flight when closing began', async () => {
  server = await startServer();
  const { port } = new URL(server.url);
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const whole = ended(socket);
  const body = JSON.stringify({ title: 'in flight at close' });
  const routed = new Promise<void>((resolve) =>
    server?.app.server.once('request', () => setImmediate(resolve)),
  );
  // Headers and half the body: the request has passed routing and waits for the rest.
  socket.write(
    'POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      `Authorization: Bearer ${TOKENS.alice}\r\nContent-Length: ${body.length}\r\n\r\n` +
      body.slice(0, 5),
  );
  // Fastify routes it (and checks that it is not closing) in the same tick as this event.
  await routed;
  const closed = server.app.close();
  socket.write(body.slice(5));
  // Without the fix close() waits for the client to give the connection up;
  // this one never would, so the test ends at its timeout instead.
  await closed;
  const reply = await whole;
  expect(reply).toMatch(/^HTTP\/1\.1 201 /);
});

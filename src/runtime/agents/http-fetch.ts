import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

/** A fetch with its own connections, to be closed when its user is done. */
export interface HttpFetch {
  fetch: typeof fetch;
  /** Closes the kept-alive connections; requests still running go on. */
  close(): void;
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([204, 205, 304]);
const IDLE_TIMEOUT_MS = 4000;
// Node keeps 256 idle connections by default and closes the rest: a burst of
// follow-ups would then connect again for the next burst.
const MAX_IDLE = 1024;

/**
 * The fetch the openai client sends its requests with: node:http with
 * kept-alive connections. Node's global fetch costs about 150 µs of CPU more
 * per request (request/response objects, resource timing, body teeing),
 * which at a few thousand follow-ups a second is a large part of the budget.
 *
 * It takes what the client sends (a URL and a string body); anything else,
 * and any redirect, is handed to the global fetch, which handles them all.
 */
export function createHttpFetch(): HttpFetch {
  // An idle connection is closed after 4 s, or 1 s before the server's
  // announced `Keep-Alive: timeout`, whichever comes first (node:http reads
  // the hint only when a timeout is set), so a request is not sent on a
  // connection the server is closing. A request still running is not cut.
  const options = { keepAlive: true, timeout: IDLE_TIMEOUT_MS, maxFreeSockets: MAX_IDLE };
  const agents = { 'http:': new http.Agent(options), 'https:': new https.Agent(options) };
  const send = (url: URL, init: RequestInit, body: string | undefined): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(abortError());
        return;
      }
      const headers: Record<string, string> = {};
      // The openai client hands over a Headers object already: no copy of it.
      const given = init.headers instanceof Headers ? init.headers : new Headers(init.headers);
      given.forEach((value, name) => {
        headers[name] = value;
      });
      const transport = url.protocol === 'https:' ? https : http;
      const request = transport.request(url, {
        method: init.method ?? 'GET',
        headers,
        agent: url.protocol === 'https:' ? agents['https:'] : agents['http:'],
        ...(signal ? { signal } : {}),
      });
      let answered = false;
      request.on('response', (res) => {
        answered = true;
        const status = res.statusCode ?? 0;
        if (REDIRECT.has(status) && res.headers.location) {
          res.resume();
          resolve(globalThis.fetch(url, init));
          return;
        }
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value === undefined) continue;
          for (const one of Array.isArray(value) ? value : [value]) {
            responseHeaders.append(name, one);
          }
        }
        let stream: Readable = res;
        const encoding = res.headers['content-encoding']?.trim().toLowerCase();
        if (encoding === 'gzip' || encoding === 'x-gzip') stream = res.pipe(zlib.createGunzip());
        else if (encoding === 'deflate') stream = res.pipe(zlib.createInflate());
        else if (encoding === 'br') stream = res.pipe(zlib.createBrotliDecompress());
        if (stream !== res) {
          res.on('error', (error) => stream.destroy(error));
          responseHeaders.delete('content-encoding');
          responseHeaders.delete('content-length');
        }
        const nullBody = NULL_BODY.has(status) || init.method === 'HEAD';
        if (nullBody) res.resume();
        resolve(
          new Response(nullBody ? null : (Readable.toWeb(stream) as ReadableStream<Uint8Array>), {
            status,
            statusText: res.statusMessage ?? '',
            headers: responseHeaders,
          }),
        );
      });
      // Never sent twice: a reset may come from a server that read the
      // request, and the caller's attempt policy decides what happens next.
      request.on('error', (error) => {
        if (answered) return; // the body stream carries it
        reject(signal?.aborted ? abortError() : new TypeError('fetch failed', { cause: error }));
      });
      request.end(body);
    });

  const httpFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const body = init.body;
    if (input instanceof Request || (body != null && typeof body !== 'string')) {
      return globalThis.fetch(input, init);
    }
    const url = new URL(input);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return globalThis.fetch(input, init);
    return send(url, init, body ?? undefined);
  };

  return {
    fetch: httpFetch as typeof fetch,
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

function abortError(): DOMException {
  return new DOMException('This operation was aborted', 'AbortError');
}

import type { BatonProcess } from './baton-process.js';

export interface HttpReply {
  status: number;
  /** The parsed JSON body (null when empty): tests read the fields they assert on. */
  body: any;
}

/**
 * Calls a running `baton serve` over HTTP as its default owner. `server` is
 * read at each call, so a test that restarts the server keeps its client.
 */
export function httpApi(server: () => BatonProcess) {
  const call = async (method: string, path: string, body?: unknown): Promise<HttpReply> => {
    const { url, token } = server();
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
  };
  /** The body of a 2xx answer; any other answer throws with its status and body. */
  const ok = async (method: string, path: string, body?: unknown): Promise<HttpReply['body']> => {
    const reply = await call(method, path, body);
    if (reply.status >= 300) {
      throw new Error(`${method} ${path}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    return reply.body;
  };
  return { call, ok };
}

/** Raw HTTP requests (the path is sent exactly as given, unlike fetch), for the hostile campaign. */

import { Agent, request } from 'node:http';

export interface RawReply {
  status: number;
  text: string;
}

/** A keep-alive pool, so that thousands of requests do not exhaust ports. */
export function rawAgent(sockets = 32): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets });
}

export function rawRequest(
  agent: Agent | false,
  port: number,
  req: {
    method: string;
    path: string;
    headers: Record<string, string>;
    body?: string | Buffer | undefined;
  },
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    const headers = { ...req.headers, ...(body ? { 'content-length': String(body.length) } : {}) };
    const call = request(
      { host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    call.on('error', reject);
    call.setTimeout(30_000, () => call.destroy(new Error('timed out')));
    call.end(body);
  });
}

/** Runs `tasks` with at most `limit` at once. */
export async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      const task = tasks[i];
      if (task) results[i] = await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, () => worker()));
  return results;
}

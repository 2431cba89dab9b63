/**
 * The benchmarks' OpenAI-compatible endpoint, in its own process so that a
 * benchmark measures Baton's work, not the endpoint's. Prints its URL, then
 * streams a short reply to every `POST /v1/chat/completions`.
 *
 * It is leaner than the tests' scripted server on purpose: when a hundred
 * requests land at once, a request's arrival is stamped as its last bytes are
 * read, and all the rest (the reply, the report to the parent) waits until
 * every socket that was ready has been read. Otherwise the stamp of the
 * hundredth request would include the time this process spent answering the
 * ninety-nine before it. Arrivals of requests whose trigger names a job go to
 * the parent over IPC as [jobId, epochMs] pairs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

const TRIGGER = /\[Background job (j_[0-9a-z]+) finished\]/;

/**
 * The `data:` frames of a streamed one-word completion, as an OpenAI server
 * sends them: the role, the text, the finish reason, then [DONE].
 */
function frames(id: number): string[] {
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({
      id: `chatcmpl-bench-${id}`,
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: 'bench',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    })}\n\n`;
  return [
    chunk({ role: 'assistant', content: '' }, null),
    chunk({ content: 'ok' }, null),
    chunk({}, 'stop'),
    'data: [DONE]\n\n',
  ];
}

let answered = 0;
/** Replies and reports wait here until the sockets that were ready have all been read. */
let later: (() => void)[] = [];
let arrivals: [string, number][] = [];

function defer(work: () => void): void {
  later.push(work);
  if (later.length > 1) return;
  setImmediate(() => {
    const now = later;
    later = [];
    for (const run of now) run();
    if (arrivals.length > 0 && process.send) process.send(arrivals);
    arrivals = [];
  });
}

function chat(req: IncomingMessage, res: ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (part: Buffer) => parts.push(part));
  req.on('end', () => {
    // timeOrigin + performance.now() is epoch time at sub-millisecond
    // resolution, comparable with the parent's own (Date.now() is whole ms).
    const at = performance.timeOrigin + performance.now();
    defer(() => {
      const job = TRIGGER.exec(Buffer.concat(parts).toString('utf8'));
      if (job) arrivals.push([job[1]!, at]);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
      });
      // One write a frame, as a server streaming tokens does (and as the
      // tests' server does), so the client reads what it would read there.
      for (const frame of frames(answered++)) res.write(frame);
      res.end();
    });
  });
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.endsWith('/chat/completions')) {
    chat(req, res);
    return;
  }
  req.resume();
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ url: `http://127.0.0.1:${port}/v1` });
});
process.on('disconnect', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

/**
 * The loopback OpenAI-compatible server of the tests, in its own process so
 * that a benchmark measures Baton's work, not the fake's. Prints its URL, then
 * answers every request with a short reply. Arrival times of requests whose
 * trigger names a job are sent to the parent over IPC as [jobId, epochMs].
 */
import { performance } from 'node:perf_hooks';
import { startFakeOpenAI, lastUserContent } from '../test/support/fake-openai.js';

const fake = await startFakeOpenAI((req) => {
  const match = /\[Background job (j_[0-9a-z]+) finished\]/.exec(lastUserContent(req));
  // timeOrigin + performance.now() is epoch time at sub-millisecond
  // resolution, comparable with the parent's own (Date.now() is whole ms).
  if (match && process.send) process.send([match[1], performance.timeOrigin + req.at]);
  return 'ok';
});
process.send?.({ url: fake.url });
process.on('disconnect', () => void fake.close().then(() => process.exit(0)));

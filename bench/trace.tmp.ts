import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { OpenAIAgent } from '../src/runtime/agents/openai.js';
import { SqliteStore } from '../src/runtime/store/sqlite.js';
import { Baton } from '../src/runtime/system.js';
import { startFakeOpenAI } from '../test/support/fake-openai.js';
let arrived = 0;
const fake = await startFakeOpenAI((r) => { arrived = r.at; return 'ok'; });
const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
const store = new SqliteStore({ path: join(dir, 'baton.db') });
await store.init();
const baton = new Baton({ store, agent: new OpenAIAgent({ baseURL: fake.url, model: 'b' }), dataDir: dir, workDir: dir });
const marks: Record<string, number[]> = {};
let t0 = 0;
baton.feed.subscribe('b', (f) => { const k = f.type + ':' + ((f.data as any).state ?? (f.data as any).lock ?? ''); (marks[k] ??= []).push(performance.now() - t0); });
const s = await baton.createSession('b', {});
for (let i = 0; i < 200; i++) {
  const j = await baton.startJob('b', s.id, { external: true });
  t0 = performance.now();
  await baton.completeJob('b', j.id, { exitCode: 0 });
  while ((await baton.getJob('b', j.id)).state !== 'followedUp') await new Promise((r) => setImmediate(r));
  (marks['arrive'] ??= []).push(arrived - t0);
}
for (const [k, v] of Object.entries(marks)) { const x = v.slice(100).sort((a, b) => a - b); console.log(k.padEnd(40), x[Math.floor(x.length / 2)]?.toFixed(2)); }
await baton.close(); await fake.close();

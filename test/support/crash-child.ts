/**
 * A Baton runtime in a child process for crash tests: started on a data dir,
 * it recovers, tops the data dir up to a target number of sessions and jobs,
 * completes external jobs, and prints "final" once every job is final. The
 * parent kills it with SIGKILL at random instants and starts it again.
 *
 * argv: <dataDir> <sessions> <jobsPerSession>
 */
import { join } from 'node:path';
import { OfflineAgent } from '../../src/runtime/agents/offline.js';
import type { Agent, AgentRunInput } from '../../src/runtime/agents/agent.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import { Baton } from '../../src/runtime/system.js';
import { FINAL_JOB_STATES } from '../../src/runtime/store/store.js';

const [dir = '', sessionsArg = '5', perSessionArg = '4'] = process.argv.slice(2);
const targetSessions = Number(sessionsArg);
const perSession = Number(perSessionArg);

/** The offline agent, slowed down so that kills land while it streams. */
class SlowAgent implements Agent {
  readonly kind = 'offline';
  readonly model = 'slow-offline';
  private readonly inner = new OfflineAgent();
  async run(input: AgentRunInput) {
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    return this.inner.run(input);
  }
}

const store = new SqliteStore({ path: join(dir, 'baton.db') });
await store.init();
const baton = new Baton({
  store,
  agent: new SlowAgent(),
  dataDir: dir,
  policy: { retryBaseMs: 5, retryMaxMs: 50, maxAttempts: 20, killGraceMs: 100, drainMs: 200 },
});
await baton.recover();
process.stdout.write('ready\n');

const owner = 'crash';
let sessions = await store.listSessions(owner);
while (sessions.length < targetSessions) {
  await baton.createSession(owner, { title: `s${sessions.length}` });
  sessions = await store.listSessions(owner);
}
for (const [index, session] of sessions.entries()) {
  const jobs = await store.listJobs({ sessionId: session.id });
  for (let i = jobs.length; i < perSession; i++) {
    if (i % 2 === 0) {
      await baton.startJob(owner, session.id, {
        command: `sleep 0.0${(i + index) % 10}; echo job ${i}`,
      });
    } else {
      await baton.startJob(owner, session.id, { external: true, name: `ext ${i}` });
    }
    if (i === 1) await baton.sendMessage(owner, session.id, `hello from ${session.title}`);
  }
}
const completeExternal = async () => {
  for (const job of await store.listJobs({ owner, state: 'running' })) {
    if (job.external) {
      await baton
        .completeJob(owner, job.id, { exitCode: 0, output: `done ${job.id}` })
        .catch(() => {});
    }
  }
};
await completeExternal();

const reportFinal = async () => {
  const jobs = await store.listJobs({ owner });
  if (
    jobs.length >= targetSessions * perSession &&
    jobs.every((j) => FINAL_JOB_STATES.includes(j.state))
  ) {
    clearInterval(timer);
    process.stdout.write('final\n');
  }
};
// A read that fails while the store closes (SIGTERM) is tried again on the next tick.
const timer = setInterval(() => void reportFinal().catch(() => {}), 50);

process.on('SIGTERM', () => {
  clearInterval(timer);
  void baton.close().then(() => process.exit(0));
});

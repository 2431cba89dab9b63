import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJobMachine } from '../../src/machines/job.machine.js';
import { JobActor, type JobActorHost } from '../../src/runtime/job-actor.js';
import { FencedError, type Batch, type JobRow } from '../../src/runtime/store/store.js';

function row(): JobRow {
  return {
    id: 'j1',
    sessionId: 's1',
    owner: 'alice',
    command: null,
    cwd: null,
    timeoutS: null,
    external: true,
    name: null,
    labels: {},
    state: 'running',
    outcome: null,
    exitCode: null,
    attempts: 0,
    output: '',
    createdAt: new Date(0).toISOString(),
    finishedAt: null,
    followedUpAt: null,
    history: [],
    why: '',
    snapshot: null,
    process: null,
    version: 0,
  };
}

/** A host whose writes fail after the first one, as when another process took the session. */
function fencedHost(errors: unknown[]): JobActorHost & { batches: Batch[] } {
  const batches: Batch[] = [];
  return {
    batches,
    machine: createJobMachine(),
    now: () => 0,
    why: () => '',
    transitionWrites: () => ({}),
    onError: (_job, error) => errors.push(error),
    write: (_job, batch) => {
      batches.push(batch);
      return batches.length === 1
        ? Promise.resolve()
        : Promise.reject(new FencedError({ sessionId: 's1', epoch: 1 }));
    },
  };
}

describe('JobActor', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it('leaves no unhandled rejection when a write that changes nothing of the job fails', async () => {
    const errors: unknown[] = [];
    const host = fencedHost(errors);
    const job = new JobActor(host, row(), {
      input: { jobId: 'j1', sessionId: 's1', maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 100 },
    });
    await job.start();
    // Not a transition of a running job: the actor writes an empty batch (a
    // lock event may ride in it), which is refused.
    job.send({ type: 'LOCK_GRANTED' });
    expect(host.batches).toHaveLength(2);
    expect(host.batches[1]).toEqual({});
    // Past the turn in which Node reports a rejection nobody handled.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(unhandled).toEqual([]);
  });
});


import { coveringPaths } from '../test/model/paths.js';
import { jobModelLogic } from '../test/model/job.driver.js';
(() => {
  const t = Date.now();
  const samples: any = { START: [{ type: 'START' }], FINISHED: [{ type: 'FINISHED', outcome: 'timedOut', exitCode: null, at: 500 }, { type: 'FINISHED', outcome: 'cancelled', exitCode: 143, at: 500 }], CANCEL: [{ type: 'CANCEL' }], SESSION_DELETED: [{ type: 'SESSION_DELETED' }], LOCK_GRANTED: [{ type: 'LOCK_GRANTED' }], COALESCED: [{ type: 'COALESCED', leaderId: 'j_0', followUp: {} }], RETRY_DUE: [{ type: 'RETRY_DUE' }], RETRY: [{ type: 'RETRY' }], INTERRUPTED: [{ type: 'INTERRUPTED', reason: 'r' }], 'xstate.done.actor.followUp': [{ type: 'xstate.done.actor.followUp', output: {} }], 'xstate.error.actor.followUp': [{ type: 'xstate.error.actor.followUp', error: {} }] };
  const r = coveringPaths({ logic: jobModelLogic(), input: { jobId: 'j', sessionId: 's', maxAttempts: 2, retryBaseMs: 100, retryMaxMs: 1000, held: true }, samples, serialize: (s: any) => JSON.stringify([s.value, s.context.attempts, s.context.redrives > 0]), base: 'simple' });
  console.log(r.paths.length, r.edges, r.added, r.paths.reduce((a, p) => a + p.steps.length, 0), Date.now() - t, 'ms');
})();

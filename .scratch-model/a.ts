import { getSimplePaths, getShortestPaths, getAdjacencyMap, adjacencyMapToArray } from '@xstate/graph';
import { createJobMachine } from '../src/machines/job.machine.js';
import { createSessionMachine } from '../src/machines/session.machine.js';
function evs(samples: Record<string, any[]>) {
  return (s: any) => {
    const types = new Set<string>();
    for (const n of s._nodes) for (const k of n.transitions.keys()) types.add(k);
    return [...types].flatMap((t) => samples[t] ?? [{ type: t }]).filter((e) => s.can(e));
  };
}
const m = createJobMachine({ now: () => 1000, random: () => 0.5 });
const fu = { messageId: 'm1', jobIds: ['j1'], content: 'c', metadata: {} };
const samples: Record<string, any[]> = {
  FINISHED: [{ type: 'FINISHED', outcome: 'timedOut', exitCode: null, at: 5 },
  { type: 'FINISHED', outcome: 'cancelled', exitCode: null, at: 5 }],
  COALESCED: [{ type: 'COALESCED', leaderId: 'j0', followUp: fu }],
  INTERRUPTED: [{ type: 'INTERRUPTED', reason: 'restart' }],
  'xstate.done.actor.followUp': [{ type: 'xstate.done.actor.followUp', output: fu }],
  'xstate.error.actor.followUp': [{ type: 'xstate.error.actor.followUp', error: { code: 'x', message: 'y' } }],
};
const ser = (s: any) => JSON.stringify({ v: s.value, a: s.context.attempts, h: s.context.held, r: s.context.redrives > 0 });
for (const held of [true, false]) {
const opts: any = { input: { jobId: 'j1', sessionId: 's1', maxAttempts: 2, retryBaseMs: 100, retryMaxMs: 1000, held }, events: evs(samples), serializeState: ser, stopWhen: (s: any) => s.status !== 'active' };
const adj = getAdjacencyMap(m as any, opts);
console.log('nodes', Object.keys(adj).length, 'edges', adjacencyMapToArray(adj).length);
const sp = getSimplePaths(m as any, opts);
console.log('simple', sp.length, 'shortest', getShortestPaths(m as any, opts).length, 'steps', sp.reduce((a: number, p: any) => a + p.steps.length, 0));
}
const sm = createSessionMachine({ now: () => 0 });
for (const ids of [[['L', 'live'], ['F1', 'followUp']], [['L', 'live'], ['F1', 'followUp'], ['F2', 'followUp']]]) {
const ss: Record<string, any[]> = { ACQUIRE: ids.map(([id, kind]) => ({ type: 'ACQUIRE', kind, id })), RELEASE: ids.map(([id]) => ({ type: 'RELEASE', id, reason: 'done' })) };
const sser = (s: any) => JSON.stringify({ v: s.value, h: s.context.holder?.id ?? null, q: s.context.queue.map((w: any) => w.id) });
const sopts: any = { input: { sessionId: 's', leaseMs: 1000 }, events: evs(ss), serializeState: sser, stopWhen: (s: any) => s.status !== 'active' };
const sadj = getAdjacencyMap(sm as any, sopts);
console.log('session nodes', Object.keys(sadj).length, 'edges', adjacencyMapToArray(sadj).length);
const t0 = Date.now();
const ssp = getSimplePaths(sm as any, sopts);
console.log('session simple', ssp.length, Date.now() - t0, 'ms', 'steps', ssp.reduce((a: number, p: any) => a + p.steps.length, 0));
}

import { createActor, fromPromise } from 'xstate';
import type { ActorLogic, InspectionEvent, SnapshotFrom } from 'xstate';
import { createJobMachine } from '../../src/machines/job.machine.js';
import type {
  FollowUpInput,
  FollowUpOutput,
  JobEvent,
  JobInput,
  JobMachine,
  JobMachineDeps,
} from '../../src/machines/job.machine.js';

/** A real job actor whose effects are recorded and whose follow-ups the test settles. */

export type JobSnapshot = SnapshotFrom<JobMachine>;
export type FollowUpDone = { type: 'xstate.done.actor.followUp'; output: FollowUpOutput };
export type FollowUpError = { type: 'xstate.error.actor.followUp'; error: unknown };
/** The job's own events plus the two its `followUp` invoke raises. */
export type JobModelEvent = JobEvent | FollowUpDone | FollowUpError;

export type JobEffect =
  | 'startProcess'
  | 'killProcess'
  | 'requestLock'
  | 'withdrawLock'
  | 'releaseLock'
  | 'scheduleRetry'
  | 'clearRetry'
  | 'armDeadline'
  | 'clearDeadline';

export interface FollowUpCall {
  input: FollowUpInput;
  signal: AbortSignal;
  settled: boolean;
  resolve: (output: FollowUpOutput) => void;
  reject: (error: unknown) => void;
}

export const jobDeps: JobMachineDeps = { now: () => 1_000, random: () => 0.5 };

/** The job machine as logic over the model's events, for @xstate/graph. */
export function jobModelLogic(deps: JobMachineDeps = jobDeps) {
  // The machine does take the done/error events; its declared event type just omits them.
  return createJobMachine(deps) as unknown as ActorLogic<JobSnapshot, JobModelEvent, JobInput>;
}

export interface JobDriver {
  actor: ReturnType<typeof createActor<JobMachine>>;
  calls: FollowUpCall[];
  /** Returns the effects recorded since the last call, and forgets them. */
  takeEffects(): JobEffect[];
  /** Sends an event, or settles the running follow-up for a done/error event and lets its result arrive. */
  apply(event: JobModelEvent): Promise<void>;
}

export function startJob(
  input: JobInput,
  options: { deps?: JobMachineDeps; inspect?: (event: InspectionEvent) => void } = {},
): JobDriver {
  let effects: JobEffect[] = [];
  const calls: FollowUpCall[] = [];
  const record = (effect: JobEffect) => () => {
    effects.push(effect);
  };
  const machine = createJobMachine(options.deps ?? jobDeps).provide({
    actions: {
      startProcess: record('startProcess'),
      killProcess: record('killProcess'),
      requestLock: record('requestLock'),
      withdrawLock: record('withdrawLock'),
      releaseLock: record('releaseLock'),
      scheduleRetry: record('scheduleRetry'),
      clearRetry: record('clearRetry'),
      armDeadline: record('armDeadline'),
      clearDeadline: record('clearDeadline'),
    },
    actors: {
      followUp: fromPromise<FollowUpOutput, FollowUpInput>(
        ({ input: callInput, signal }) =>
          new Promise<FollowUpOutput>((resolve, reject) => {
            const call: FollowUpCall = {
              input: callInput,
              signal,
              settled: false,
              resolve: (output) => {
                call.settled = true;
                resolve(output);
              },
              reject: (error) => {
                call.settled = true;
                reject(error);
              },
            };
            calls.push(call);
          }),
      ),
    },
  });
  const actor = createActor(machine, {
    input,
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();

  const pendingCall = (): FollowUpCall => {
    const call = calls.at(-1);
    if (!call || call.settled) throw new Error('no follow-up is running');
    return call;
  };

  return {
    actor,
    calls,
    takeEffects() {
      const taken = effects;
      effects = [];
      return taken;
    },
    async apply(event) {
      // A job that reached a final state takes nothing more; xstate would only warn.
      if (actor.getSnapshot().status !== 'active') return;
      if (event.type === 'xstate.done.actor.followUp') pendingCall().resolve(event.output);
      else if (event.type === 'xstate.error.actor.followUp') pendingCall().reject(event.error);
      else return actor.send(event);
      await flush();
    },
  };
}

/** Lets every pending promise callback run (the follow-up's result reaches the job this way). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The top-level state of a job snapshot. */
export function topState(snapshot: JobSnapshot): string {
  const value: unknown = snapshot.value;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return Object.keys(value)[0] ?? '';
  return '';
}

/**
 * The actions of the races campaign and their generators: user messages, job
 * starts, completions, cancels, retries, session deletes and restarts, each
 * either awaited or left running while the next one starts.
 */

import fc from 'fast-check';
import { AgentError, type Agent, type AgentRunInput } from '../../../src/runtime/agents/agent.js';
import { OfflineAgent } from '../../../src/runtime/agents/offline.js';
import type { Rng } from './rng.js';

export type RaceAction = { wait: boolean } & (
  | { kind: 'message'; session: number; text: string }
  | { kind: 'job'; session: number; external: boolean; command: string }
  | { kind: 'complete'; job: number; exitCode: number }
  | { kind: 'cancel'; job: number }
  | { kind: 'retry'; job: number }
  | { kind: 'delete'; session: number }
  | { kind: 'session' }
  | { kind: 'restart' }
  | { kind: 'pause'; ms: number }
);

const index = fc.nat({ max: 7 });

export const raceAction: fc.Arbitrary<RaceAction> = fc
  .tuple(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('message' as const),
          session: index,
          text: fc.constantFrom('hi', 'bg echo r', 'bg sleep 0.05'),
        }),
      },
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('job' as const),
          session: index,
          external: fc.boolean(),
          command: fc.constantFrom('echo a', 'sleep 0.03', 'exit 3', 'sleep 0.2'),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('complete' as const),
          job: index,
          exitCode: fc.constantFrom(0, 1),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), job: index }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), job: index }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), session: index }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('session' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('pause' as const),
          ms: fc.integer({ min: 0, max: 40 }),
        }),
      },
    ),
    fc.boolean(),
  )
  .map(([action, wait]) => ({ ...action, wait }));

/**
 * The offline agent with a random pause before it answers (so that turns and
 * follow-ups overlap), failing at the given rate (high enough in some runs
 * that jobs end `failed` and retries have something to re-drive).
 */
export class JitteryAgent implements Agent {
  readonly kind = 'offline';
  readonly model = 'jittery-offline';
  private readonly inner = new OfflineAgent();
  constructor(
    private readonly r: Rng,
    private readonly failureRate: number,
  ) {}

  async run(input: AgentRunInput) {
    await new Promise((resolve) => setTimeout(resolve, this.r.int(0, 25)));
    if (this.r.chance(this.failureRate))
      throw new AgentError('agent_http', 'the model server answered HTTP 500');
    return this.inner.run(input);
  }
}

import type { InspectionEvent } from 'xstate';
import type { Agent } from './agents/agent.js';
import type { Clock } from './clock.js';
import type { Coordinator } from './coordinator.js';
import type { Ids } from './ids.js';
import type { BatonPolicy, Logger } from './policy.js';
import type { LockRecord } from './session-locks.js';
import type { Store } from './store/store.js';

export interface BatonOptions {
  store: Store;
  agent: Agent;
  /** Holds each job's directory (wrapper, log, exit file) under `jobs/`. */
  dataDir: string;
  /** Working directory of jobs that name none, and of `run_command`. @defaultValue process.cwd() */
  workDir?: string;
  policy?: Partial<BatonPolicy>;
  clock?: Clock;
  ids?: Ids;
  random?: () => number;
  logger?: Logger;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** How processes sharing the store divide the sessions. @defaultValue a single-process one */
  coordinator?: Coordinator;
  /** Sees every lock grant and release (tests assert that holders never overlap). */
  onLockRecord?: (sessionId: string, record: LockRecord) => void;
}

export type StartJobBody =
  | { command: string; timeoutS?: number | undefined; cwd?: string | undefined }
  | { external: true; name?: string | undefined };

export interface CompleteJobBody {
  exitCode: number;
  output?: string | undefined;
  outcome?: 'succeeded' | 'failed' | 'timedOut' | 'lost' | undefined;
}

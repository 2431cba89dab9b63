import type { InspectionEvent } from 'xstate';
import type { Agent } from './agents/agent.js';
import type { Clock } from './clock.js';
import type { Coordinator } from './coordinator.js';
import type { Ids } from './ids.js';
import type { BatonPolicy, Logger } from './policy.js';
import type { LockRecord } from './session-locks.js';
import type { Sandbox } from './sandbox/sandbox.js';
import type { Store } from './store/store.js';

export interface BatonOptions {
  store: Store;
  agent: Agent;
  /** Holds each job's directory (wrapper, log, exit file) under `jobs/`. */
  dataDir: string;
  /**
   * Holds each owner's work directory, `<workRoot>/<owner>/`: where that
   * owner's jobs and `run_command` calls work. @defaultValue `<dataDir>/work`
   */
  workRoot?: string;
  /** Owners whose work directory the operator places elsewhere: owner → directory. */
  workDirs?: Readonly<Record<string, string>>;
  /** What commands run in. @defaultValue no sandbox, a clean environment, the default limits */
  sandbox?: Sandbox;
  /** How long finished jobs' directories and feed events are kept; 0 keeps them. @defaultValue 7 days */
  retainMs?: number;
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

/** What a job may be known by besides its id: a name, and small tags to find it by. */
interface JobTags {
  name?: string | undefined;
  labels?: Record<string, string> | undefined;
}

export type StartJobBody =
  | ({ command: string; timeoutS?: number | undefined; cwd?: string | undefined } & JobTags)
  | ({
      external: true;
      /** Seconds until the job must be completed, or it ends `timedOut`. */
      timeoutS?: number | undefined;
      /** The job must send a heartbeat this often (seconds), or it ends `lost`. */
      heartbeatS?: number | undefined;
    } & JobTags);

export interface CompleteJobBody {
  exitCode: number;
  output?: string | undefined;
  outcome?: 'succeeded' | 'failed' | 'timedOut' | 'lost' | undefined;
}

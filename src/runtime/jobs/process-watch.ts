/** What the runner keeps for each job it watches. */
import type { ChildProcess } from 'node:child_process';
import type { FSWatcher } from 'node:fs';
import type { KillReason } from './wrapper.js';

export interface Watch {
  readonly jobId: string;
  readonly dir: string;
  readonly pid: number;
  readonly startTime: string;
  readonly startedAt: number;
  readonly timeoutS: number;
  /** Set for a process this runner started; null for an adopted one. */
  child: ChildProcess | null;
  onChildExit: (() => void) | null;
  watcher: FSWatcher | null;
  sweep: NodeJS.Timeout | null;
  deadline: NodeJS.Timeout | null;
  grace: NodeJS.Timeout | null;
  /** Re-checks the group during the grace, so an emptied group ends the kill early. */
  killCheck: NodeJS.Timeout | null;
  killReason: KillReason | null;
  done: boolean;
  /** Resolves after onExit has been called, or when the runner stops watching. */
  settled: Promise<void>;
  settle: () => void;
}

type WatchBase = Pick<Watch, 'jobId' | 'dir' | 'pid' | 'startTime' | 'startedAt' | 'timeoutS'>;

export function newWatch(base: WatchBase): Watch {
  let settle = (): void => {};
  const settled = new Promise<void>((res) => (settle = res));
  const idle = { child: null, onChildExit: null, watcher: null, sweep: null, deadline: null };
  return {
    ...base,
    ...idle,
    grace: null,
    killCheck: null,
    killReason: null,
    done: false,
    settled,
    settle,
  };
}

/**
 * Retention (`--retain-days`): what is old enough goes, so that nothing the
 * service keeps on disk grows without bound. Feed events older than the
 * retention are deleted from the store, and so are the directories
 * (`<dataDir>/jobs/<jobId>/`: wrapper, output log, exit file) of jobs that
 * ended before it. Job rows and messages are never deleted: a job's capped
 * output stays readable from its row.
 */
import { opendir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { iso, type Clock } from './clock.js';
import { BatonError } from './errors.js';
import { ID_PATTERN } from './ids.js';
import { silentLogger, type Logger } from './policy.js';
import { FINAL_JOB_STATES, type JobRow, type Store } from './store/store.js';

/** Options of {@link Retention}. */
export interface RetentionOptions {
  store: Store;
  clock: Clock;
  /** Holds `jobs/<jobId>/` of every job this process ran. */
  dataDir: string;
  /** How long a finished job's directory and a feed event are kept; 0 keeps them forever. */
  retainMs: number;
  /** Time between passes. @defaultValue one hour */
  intervalMs?: number;
  /** Delay of the first pass after {@link Retention.start}. @defaultValue one minute */
  firstPassMs?: number;
  /** Events deleted per store call. @defaultValue 2000 */
  chunk?: number;
  logger?: Logger;
}

/** What one pass removed. */
export interface RetentionPass {
  events: number;
  jobDirs: number;
}

const HOUR_MS = 3_600_000;

/** Directory entries looked at between two yields to the event loop. */
const DIRS_PER_TURN = 100;

/**
 * Runs a pass shortly after {@link Retention.start}, then every
 * `intervalMs`. A pass never overlaps another, and a failing pass is logged
 * and tried again at the next interval.
 */
export class Retention {
  private readonly intervalMs: number;
  private readonly firstPassMs: number;
  private readonly chunk: number;
  private readonly logger: Logger;
  private timer: unknown = null;
  private running: Promise<RetentionPass> | null = null;
  private started = false;
  private closed = false;

  constructor(private readonly options: RetentionOptions) {
    this.intervalMs = options.intervalMs ?? HOUR_MS;
    this.firstPassMs = options.firstPassMs ?? 60_000;
    this.chunk = options.chunk ?? 2000;
    this.logger = options.logger ?? silentLogger;
    wholeNumber('retainMs', options.retainMs, 0);
    wholeNumber('intervalMs', this.intervalMs, 1);
    wholeNumber('firstPassMs', this.firstPassMs, 0);
    wholeNumber('chunk', this.chunk, 1);
  }

  /** True when something is ever pruned (`retainMs` is not 0). */
  get enabled(): boolean {
    return this.options.retainMs > 0;
  }

  /** Arms the first pass; does nothing when retention is off, closed or already started. */
  start(): void {
    // Not the timer: it is null while a pass runs, and a second chain of passes would start.
    if (!this.enabled || this.closed || this.started) return;
    this.started = true;
    this.arm(this.firstPassMs);
  }

  /**
   * Runs one pass now and resolves with what it removed; while a pass runs,
   * resolves with that one. Rejects when the store fails.
   */
  runOnce(): Promise<RetentionPass> {
    if (this.closed) {
      return Promise.reject(new BatonError('shutting_down', 'retention is closed'));
    }
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops the timer and waits for a pass in progress; safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private arm(ms: number): void {
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      void this.runOnce()
        .then(
          (pass) => {
            if (pass.events + pass.jobDirs > 0) this.logger.info({ ...pass }, 'retention pruned');
          },
          (error: unknown) => this.logger.warn({ err: error }, 'retention pass failed'),
        )
        .finally(() => {
          if (!this.closed) this.arm(this.intervalMs);
        });
    }, ms);
  }

  private async pass(): Promise<RetentionPass> {
    if (!this.enabled) return { events: 0, jobDirs: 0 };
    const cutoffMs = this.options.clock.now() - this.options.retainMs;
    const events = await this.pruneEvents(iso(cutoffMs));
    const jobDirs = await this.pruneJobDirs(cutoffMs);
    return { events, jobDirs };
  }

  private async pruneEvents(before: string): Promise<number> {
    let total = 0;
    while (!this.closed) {
      const deleted = await this.options.store.pruneEvents(before, this.chunk);
      total += deleted;
      if (deleted < this.chunk) break;
      // The SQLite store deletes synchronously: let requests in between chunks.
      await nextTurn();
    }
    return total;
  }

  private async pruneJobDirs(cutoffMs: number): Promise<number> {
    const root = join(this.options.dataDir, 'jobs');
    let dir;
    try {
      dir = await opendir(root);
    } catch (error) {
      if (isNotFound(error)) return 0;
      throw error;
    }
    let removed = 0;
    let seen = 0;
    // opendir streams the entries: a directory of many jobs is never held whole.
    for await (const entry of dir) {
      if (this.closed) break;
      if (++seen % DIRS_PER_TURN === 0) await nextTurn();
      // Only what Baton made: a symlink or a stranger's file is left alone.
      if (!entry.isDirectory() || !ID_PATTERN.test(entry.name)) continue;
      const row = await this.options.store.getJob(entry.name);
      // No row: not a job of this store, or one whose start was never
      // stored. Kept: nothing says it ended.
      if (!row || !endedBefore(row, cutoffMs)) continue;
      await rm(join(root, entry.name), { recursive: true, force: true });
      removed += 1;
    }
    return removed;
  }
}

/**
 * True when the job is final and its last change is older than the cut-off.
 * A job that is not final may still need its directory: a running process is
 * re-adopted from it after a restart.
 */
export function endedBefore(row: JobRow, cutoffMs: number): boolean {
  if (!FINAL_JOB_STATES.includes(row.state)) return false;
  const times = [row.finishedAt, row.followedUpAt, row.history.at(-1)?.at ?? null]
    .filter((t): t is string => t !== null)
    .map((t) => Date.parse(t))
    .filter((t) => !Number.isNaN(t));
  return times.length > 0 && Math.max(...times) < cutoffMs;
}

function wholeNumber(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new BatonError(
      'invalid_request',
      `${name} must be a whole number ≥ ${min}, got ${value}`,
    );
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && Reflect.get(error, 'code') === 'ENOENT';
}

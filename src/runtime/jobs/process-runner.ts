/**
 * Runs background jobs as detached process groups and reports how they end.
 *
 * The runner knows nothing about machines or the store: the runtime starts a
 * job, stores the returned {@link ProcessHandle}, and gets one `onExit` call
 * when the job ends. After a restart of the service the runtime hands the
 * stored handle back to {@link ProcessRunner.adopt}.
 *
 * Everything the runner needs to decide an outcome is on disk in the job's
 * directory (see `JOB_FILES`), written in an order that survives a restart at
 * any point: the wrapper writes `exit` atomically when the command ends, and
 * the runner writes a `timedout` or `cancelled` marker before it kills.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_HEAD_BYTES, DEFAULT_TAIL_BYTES, readCappedFile } from './output-cap.js';
import type { CapOptions } from './output-cap.js';
import {
  identityOf,
  isSameProcessAlive,
  jobGroupMembers,
  readProcStat,
  signalJobGroup,
} from './proc-identity.js';
import {
  JOB_FILES,
  hasExitRecord,
  prepareJobDir,
  readKillMarker,
  writeKillMarker,
} from './wrapper.js';
import type { KillReason } from './wrapper.js';

import { collectExit } from './collect-exit.js';
import { decideOutcome } from './process-types.js';
import { jobEnvironment } from '../sandbox/job-env.js';
import { newWatch, type Watch } from './process-watch.js';
import type {
  ExitListener,
  ProcessExit,
  ProcessHandle,
  ProcessRunnerOptions,
  ProcessSpec,
} from './process-types.js';

// The runner's public shapes live beside it; importers keep using this module.
export * from './process-types.js';

// setTimeout fires at once for delays past 2^31-1 ms, so long deadlines are re-armed.
const MAX_TIMER_MS = 2 ** 31 - 1;
const KILL_CHECK_FIRST_MS = 10;
const KILL_CHECK_MAX_MS = 250;

/** Detached process runner; see the module comment. */
export class ProcessRunner {
  private readonly onExit: ExitListener;
  private readonly now: () => number;
  private readonly headBytes: number;
  private readonly tailBytes: number;
  private readonly killGraceMs: number;
  private readonly sweepIntervalMs: number;
  private readonly logger: { warn(obj: object, msg?: string): void } | undefined;
  private readonly watches = new Map<string, Watch>();
  /**
   * Jobs inside `start()`/`adopt()`, before their watch is registered, with a
   * promise that settles when the call ends: a cancel that arrives meanwhile
   * waits for it instead of missing the job.
   */
  private readonly pending = new Map<string, Promise<void>>();
  /** SIGKILL timers for processes a finished job left behind in its group. */
  private readonly reapers = new Map<NodeJS.Timeout, { pid: number; startTime: string }>();
  private closing: Promise<void> | null = null;

  constructor(opts: ProcessRunnerOptions) {
    this.onExit = opts.onExit;
    this.now = opts.now ?? Date.now;
    this.headBytes = opts.outputHeadBytes ?? DEFAULT_HEAD_BYTES;
    this.tailBytes = opts.outputTailBytes ?? DEFAULT_TAIL_BYTES;
    this.killGraceMs = opts.killGraceMs ?? 5000;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 2000;
    this.logger = opts.logger;
  }

  /**
   * Starts a job detached in its own process group (so it outlives a restart
   * of the service) and returns once the wrapper runs. `onExit` is called
   * when it ends.
   */
  async start(spec: ProcessSpec): Promise<ProcessHandle> {
    const release = this.reserve(spec.jobId);
    try {
      const dir = resolve(spec.dir);
      const cwd = resolve(spec.cwd);
      await prepareJobDir(dir, spec.command);
      this.assertOpen();

      const commandFile = join(dir, JOB_FILES.command);
      const launch = spec.launch?.(commandFile) ?? {
        argv: ['/bin/sh', commandFile],
        env: jobEnvironment('none', cwd, {}),
      };
      const child = spawn('/bin/sh', [join(dir, JOB_FILES.wrapper), dir, cwd, ...launch.argv], {
        cwd: dir,
        detached: true,
        stdio: 'ignore',
        env: launch.env,
      });
      const pid = child.pid;
      if (pid === undefined) {
        const [err] = (await once(child, 'error')) as [Error];
        throw err;
      }
      // Read before any await: until the event loop reaps the child, its
      // /proc entry exists even if it has already exited.
      const procStat = readProcStat(pid);
      if (procStat === null) {
        // Unwatchable means unaccounted for: do not leave it running.
        process.kill(-pid, 'SIGKILL');
        throw new Error(`cannot read /proc/${pid}/stat of the job wrapper`);
      }
      const startedAt = this.now();
      const startTime = identityOf(procStat);
      const w = newWatch({
        jobId: spec.jobId,
        dir,
        pid,
        startTime,
        startedAt,
        timeoutS: spec.timeoutS,
      });
      w.child = child;
      w.onChildExit = () => {
        w.child = null;
        this.wrapperGone(w);
      };
      // The wrapper is our child: its exit event is the exit detection, no polling.
      child.once('exit', w.onChildExit);
      child.on('error', (err) =>
        this.logger?.warn({ jobId: spec.jobId, err }, 'job wrapper error'),
      );
      this.watches.set(spec.jobId, w);
      this.armDeadline(w);
      await once(child, 'spawn');
      return { pid, startTime: w.startTime, dir, startedAt };
    } finally {
      release();
    }
  }

  /**
   * Takes a job back after a restart of the service. Returns the job's exit
   * when it has already ended (and does not call `onExit` for it); otherwise
   * watches it, calls `onExit` when it ends, and returns `'watching'`.
   */
  async adopt(spec: ProcessSpec, handle: ProcessHandle): Promise<'watching' | ProcessExit> {
    if (this.watches.has(spec.jobId)) return 'watching';
    const release = this.reserve(spec.jobId);
    try {
      const dir = resolve(handle.dir);
      const startedAt = spec.startedAt ?? handle.startedAt;
      if (hasExitRecord(dir) || !isSameProcessAlive(handle.pid, handle.startTime)) {
        // Ended while nobody watched: by itself (exit file), or it vanished
        // (lost, or timed out / cancelled if a marker says we were killing it).
        this.reapStrays(spec.jobId, handle.pid, handle.startTime);
        return await this.collect(dir, startedAt, spec.timeoutS, null, true);
      }
      const { pid, startTime } = handle;
      const w = newWatch({
        jobId: spec.jobId,
        dir,
        pid,
        startTime,
        startedAt,
        timeoutS: spec.timeoutS,
      });
      this.watches.set(spec.jobId, w);
      try {
        // Event driven: the wrapper renames exit.tmp to exit when the command ends.
        w.watcher = watch(dir, (_event, filename) => {
          if ((filename === null || filename === JOB_FILES.exit) && hasExitRecord(dir)) {
            this.wrapperGone(w);
          }
        });
        w.watcher.on('error', (err) => {
          this.logger?.warn(
            { jobId: spec.jobId, err },
            'watching the job directory failed; relying on the sweep',
          );
          w.watcher?.close();
          w.watcher = null;
        });
      } catch (err) {
        this.logger?.warn(
          { jobId: spec.jobId, err },
          'cannot watch the job directory; relying on the sweep',
        );
      }
      // Only a safety net: the watcher sees the exit file, but a process that
      // vanishes without one (killed with SIGKILL, host trouble) makes no file
      // event, so this slow sweep notices it.
      w.sweep = setInterval(() => {
        if (!w.done && (hasExitRecord(dir) || !isSameProcessAlive(w.pid, w.startTime))) {
          this.wrapperGone(w);
        }
      }, this.sweepIntervalMs);
      // The file may have appeared before the watcher was in place.
      if (hasExitRecord(dir)) {
        this.wrapperGone(w);
        return 'watching';
      }
      const marker = readKillMarker(dir);
      if (marker !== null) {
        // A previous instance was killing it when it stopped: finish the kill.
        this.killGroup(w, marker);
      } else {
        this.armDeadline(w);
      }
      return 'watching';
    } finally {
      release();
    }
  }

  /**
   * Kills the job's whole process group (SIGTERM, then SIGKILL after the
   * grace) and resolves once `onExit` has been called with `'cancelled'`. A job
   * that is already ending, or being killed for its deadline, keeps that
   * outcome. A cancel during `start()` waits for the process and then kills
   * it. Unknown ids are ignored.
   */
  async cancel(jobId: string): Promise<void> {
    await this.pending.get(jobId);
    const w = this.watches.get(jobId);
    if (w === undefined) return;
    await this.beginKill(w, 'cancelled');
    await w.settled;
  }

  /** Capped head and tail of a job's `output.log`, reading only those bytes. */
  async readOutput(
    dir: string,
    opts: CapOptions = {},
  ): Promise<{ output: string; truncated: boolean }> {
    const capped = await readCappedFile(join(dir, JOB_FILES.output), {
      headBytes: opts.headBytes ?? this.headBytes,
      tailBytes: opts.tailBytes ?? this.tailBytes,
    });
    return { output: capped.output, truncated: capped.truncated };
  }

  /** Ids of the jobs being watched. */
  running(): string[] {
    return [...this.watches.values()].filter((w) => !w.done).map((w) => w.jobId);
  }

  /**
   * Stops watching. By default the processes keep running so that they
   * outlive a restart and can be adopted; with `kill: true` every watched
   * group gets SIGKILL and `close` waits (at most the kill grace) for the
   * wrappers to exit. A group already being killed (deadline, cancel, or
   * stragglers of a finished job) gets SIGKILL either way. No `onExit` is called after `close`. Safe to call
   * twice; the options of the first call apply.
   */
  close(opts: { kill?: boolean } = {}): Promise<void> {
    this.closing ??= this.shutdown(opts.kill ?? false);
    return this.closing;
  }

  private async shutdown(kill: boolean): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const w of [...this.watches.values()]) {
      // Every step runs for every watch even when one of them throws.
      try {
        const child = w.child;
        const killing = w.killReason !== null && !w.done;
        this.detach(w);
        w.done = true;
        // A kill already decided (marker written or being written) is not left
        // half done: its grace is cut short instead.
        if (kill || killing) {
          if (child !== null && child.exitCode === null && child.signalCode === null) {
            waits.push(once(child, 'exit'));
          }
          this.signalGroup(w.pid, w.startTime, 'SIGKILL');
        }
        // Unref only now: an unref'd child whose exit is still awaited would let the loop end early.
        child?.unref();
      } catch (err) {
        this.logger?.warn({ jobId: w.jobId, err }, 'error while closing a job watch');
      }
      w.settle();
    }
    this.watches.clear();
    // Stragglers of finished jobs already got SIGTERM; like any kill under way,
    // their grace is cut short.
    for (const [timer, group] of this.reapers) {
      clearTimeout(timer);
      this.signalGroup(group.pid, group.startTime, 'SIGKILL');
    }
    this.reapers.clear();
    if (waits.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((res) => (timer = setTimeout(res, this.killGraceMs)));
      await Promise.race([Promise.allSettled(waits), grace]);
      clearTimeout(timer);
    }
  }

  /** Claims a job id for a `start()` or `adopt()` call; returns the release. */
  private reserve(jobId: string): () => void {
    this.assertOpen();
    if (this.watches.has(jobId) || this.pending.has(jobId)) {
      throw new Error(`job ${jobId} is already being watched`);
    }
    let release = (): void => {};
    this.pending.set(jobId, new Promise<void>((res) => (release = res)));
    return () => {
      this.pending.delete(jobId);
      release();
    };
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new Error('ProcessRunner is closed');
  }

  private armDeadline(w: Watch): void {
    if (!(w.timeoutS > 0) || !Number.isFinite(w.timeoutS)) return;
    const delay = w.startedAt + w.timeoutS * 1000 - this.now();
    const capped = delay > MAX_TIMER_MS;
    w.deadline = setTimeout(
      () => {
        w.deadline = null;
        if (capped) this.armDeadline(w);
        else void this.beginKill(w, 'timedOut');
      },
      Math.max(0, Math.min(delay, MAX_TIMER_MS)),
    );
  }

  /** Writes the marker, then kills. The marker comes first so the outcome survives a restart mid-kill. */
  private async beginKill(w: Watch, reason: KillReason): Promise<void> {
    if (w.done || w.killReason !== null) return;
    // It finished by itself a moment ago: its own exit status decides.
    if (hasExitRecord(w.dir)) return;
    w.killReason = reason;
    try {
      await writeKillMarker(w.dir, reason, this.now());
    } catch (err) {
      this.logger?.warn({ jobId: w.jobId, err }, 'cannot write the kill marker; killing anyway');
    }
    if (!w.done) this.killGroup(w, reason);
  }

  private killGroup(w: Watch, reason: KillReason): void {
    w.killReason = reason;
    if (w.deadline !== null) clearTimeout(w.deadline);
    w.deadline = null;
    this.signalGroup(w.pid, w.startTime, 'SIGTERM');
    w.grace = setTimeout(() => this.onGrace(w), this.killGraceMs);
    this.scheduleKillCheck(w, KILL_CHECK_FIRST_MS);
  }

  /**
   * Members die a few milliseconds after SIGTERM, and nothing tells us when
   * (they are not our children, and an adopted wrapper is not either), so
   * without a look the job would only end when the grace runs out, seconds
   * later. These looks back off and stop with the grace timer.
   */
  private scheduleKillCheck(w: Watch, delayMs: number): void {
    w.killCheck = setTimeout(() => {
      w.killCheck = null;
      if (w.done || w.grace === null) return;
      // Our own child reports its exit by event; an adopted wrapper is looked up.
      const wrapperAlive = w.child !== null || isSameProcessAlive(w.pid, w.startTime);
      if (!wrapperAlive && jobGroupMembers(w.pid, w.startTime).length === 0) void this.finish(w);
      else this.scheduleKillCheck(w, Math.min(delayMs * 2, KILL_CHECK_MAX_MS));
    }, delayMs);
  }

  private onGrace(w: Watch): void {
    w.grace = null;
    if (w.killCheck !== null) clearTimeout(w.killCheck);
    w.killCheck = null;
    if (w.done) return;
    if (jobGroupMembers(w.pid, w.startTime).length > 0) {
      this.signalGroup(w.pid, w.startTime, 'SIGKILL');
    }
    // A child of ours reports its exit once the KILL lands; an adopted wrapper
    // cannot survive SIGKILL, so it is gone now.
    if (w.child === null) void this.finish(w);
  }

  /** The wrapper has exited (child exit event, exit file, or the sweep). */
  private wrapperGone(w: Watch): void {
    if (w.done) return;
    // While a kill is under way, members still alive are either dying (the
    // kill check sees them go) or ignore SIGTERM (the grace timer kills them);
    // either then finishes the job.
    if (w.grace !== null && jobGroupMembers(w.pid, w.startTime).some((p) => p !== w.pid)) return;
    void this.finish(w);
  }

  private async finish(w: Watch): Promise<void> {
    if (w.done) return;
    w.done = true;
    this.detach(w);
    let exit: ProcessExit;
    try {
      exit = await this.collect(w.dir, w.startedAt, w.timeoutS, w.killReason, false);
    } catch (err) {
      this.logger?.warn({ jobId: w.jobId, err }, 'cannot read the result of a job');
      const finishedAt = this.now();
      exit = {
        outcome: decideOutcome(null, w.killReason),
        exitCode: null,
        output: '',
        truncated: false,
        finishedAt,
        durationMs: Math.max(0, finishedAt - w.startedAt),
        timeoutS: w.timeoutS,
      };
    }
    if (w.killReason === null) this.reapStrays(w.jobId, w.pid, w.startTime);
    // close() may have run during the reads; after it nobody listens.
    if (this.watches.get(w.jobId) === w) {
      try {
        this.onExit(w.jobId, exit);
      } catch (err) {
        this.logger?.warn({ jobId: w.jobId, err }, 'onExit listener threw');
      }
      this.watches.delete(w.jobId);
    }
    w.settle();
  }

  private detach(w: Watch): void {
    if (w.deadline !== null) clearTimeout(w.deadline);
    if (w.grace !== null) clearTimeout(w.grace);
    if (w.killCheck !== null) clearTimeout(w.killCheck);
    if (w.sweep !== null) clearInterval(w.sweep);
    w.deadline = w.grace = w.killCheck = w.sweep = null;
    w.watcher?.close();
    w.watcher = null;
    if (w.child !== null && w.onChildExit !== null) w.child.off('exit', w.onChildExit);
  }

  /** Reads what the job left on disk and decides its outcome. */
  private collect(
    dir: string,
    startedAt: number,
    timeoutS: number,
    killReason: KillReason | null,
    exitTimeIsFileTime: boolean,
  ): Promise<ProcessExit> {
    return collectExit(dir, {
      startedAt,
      timeoutS,
      killReason,
      exitTimeIsFileTime,
      now: this.now,
      headBytes: this.headBytes,
      tailBytes: this.tailBytes,
      warn: this.logger?.warn.bind(this.logger),
    });
  }

  private signalGroup(pid: number, startTime: string, signal: NodeJS.Signals): void {
    try {
      signalJobGroup(pid, startTime, signal);
    } catch (err) {
      this.logger?.warn({ pgid: pid, signal, err }, 'cannot signal a job group');
    }
  }

  /** A job's group does not outlive the job: stop what its command left running. */
  private reapStrays(jobId: string, pid: number, startTime: string): void {
    const strays = jobGroupMembers(pid, startTime).filter((p) => p !== pid);
    if (strays.length === 0) return;
    this.logger?.warn(
      { jobId, pgid: pid, pids: strays },
      'job left processes in its group; stopping them',
    );
    this.signalGroup(pid, startTime, 'SIGTERM');
    const timer = setTimeout(() => {
      this.reapers.delete(timer);
      if (jobGroupMembers(pid, startTime).length > 0) this.signalGroup(pid, startTime, 'SIGKILL');
    }, this.killGraceMs);
    this.reapers.set(timer, { pid, startTime });
  }
}

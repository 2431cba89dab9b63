import { join, resolve } from 'node:path';
import { iso } from './clock.js';
import type { JobActor } from './job-actor.js';
import { RunningJobs, type JobLimits } from './job-limits.js';
import { findJobWrapper } from './jobs/find-wrapper.js';
import { ProcessRunner, type ProcessExit } from './jobs/process-runner.js';
import type { Logger } from './policy.js';
import type { Sandbox } from './sandbox/sandbox.js';
import type { WorkDirs } from './sandbox/work-dirs.js';
import type { JobRow } from './store/store.js';

export interface JobProcessesOptions {
  /** Recorded with each process, so that another Baton process can tell whose it was. */
  hostId: string;
  dataDir: string;
  workDirs: WorkDirs;
  sandbox: Sandbox;
  defaultTimeoutS: number;
  killGraceMs: number;
  limits: JobLimits;
  now(): number;
  logger: Logger;
  /** The loaded jobs, to find the one a process belongs to and the queued ones. */
  jobs(): Iterable<JobActor>;
  job(id: string): JobActor | undefined;
  /** True once shutdown began: queued jobs then stay queued. */
  closing(): boolean;
}

/**
 * Job processes as the runtime sees them: started when a job enters
 * `running.active`, their exits turned into `FINISHED` events, the limits on
 * running jobs kept (a job over a limit waits in `running.queued`), and
 * re-adoption after a restart.
 */
export class JobProcesses {
  private readonly running: RunningJobs;
  private readonly runner: ProcessRunner;

  constructor(private readonly options: JobProcessesOptions) {
    this.running = new RunningJobs(options.limits);
    this.runner = new ProcessRunner({
      onExit: (jobId, exit) => this.onExit(jobId, exit),
      now: options.now,
      killGraceMs: options.killGraceMs,
      logger: options.logger,
    });
  }

  /** Why a new job of this owner and session would wait, or null when it may start now. */
  blocker(owner: string, sessionId: string): string | null {
    return this.running.blocker(owner, sessionId);
  }

  /** Holds a slot for a job about to start, so a burst of jobs cannot all pass the check. */
  reserve(job: { id: string; owner: string; sessionId: string }): void {
    this.running.take(job.id, job.owner, job.sessionId);
  }

  release(jobId: string): void {
    this.running.free(jobId);
  }

  get size(): number {
    return this.running.size;
  }

  async start(job: JobActor): Promise<void> {
    const row = job.row;
    if (row.external || row.command === null) return;
    this.reserve(job);
    try {
      const workDir = await this.options.workDirs.ensure(job.owner);
      const cwd = row.cwd ?? workDir;
      const handle = await this.runner.start({
        jobId: job.id,
        command: row.command,
        cwd,
        timeoutS: row.timeoutS ?? this.options.defaultTimeoutS,
        dir: join(this.options.dataDir, 'jobs', job.id),
        launch: (script) => this.options.sandbox.launch({ workDir, cwd, script }),
      });
      job.extras.process = {
        pid: handle.pid,
        startTime: handle.startTime,
        dir: handle.dir,
        startedAt: iso(handle.startedAt),
        host: this.options.hostId,
      };
      if (job.state === 'running') await job.touch();
    } catch (error) {
      this.running.free(job.id);
      // Stopping: the job stays as stored, with no process, and the next start runs it.
      if (this.options.closing()) return;
      const reason = error instanceof Error ? error.message : String(error);
      job.extras.output = `could not start the process: ${reason}`;
      job.send({ type: 'FINISHED', outcome: 'failed', exitCode: null, at: this.options.now() });
      this.pump();
    }
  }

  /** Kills the job's whole process group; its exit is then ignored (the job is cancelled). */
  cancel(job: JobActor): void {
    this.running.free(job.id);
    this.runner.cancel(job.id).catch((error: unknown) => {
      this.options.logger.warn({ err: error, jobId: job.id }, 'could not kill the job');
    });
    this.pump();
  }

  /** Starts queued jobs, oldest first, while the limits allow. */
  pump(): void {
    if (this.options.closing()) return;
    const queued = [...this.options.jobs()]
      .filter((j) => j.context.held && j.state === 'running')
      .sort((a, b) => a.row.createdAt.localeCompare(b.row.createdAt));
    for (const job of queued) {
      if (this.running.blocker(job.owner, job.sessionId) !== null) continue;
      this.reserve(job);
      job.send({ type: 'START' });
    }
  }

  /**
   * After a restart: a job whose process still runs (same pid and start
   * time) is watched again; one that finished meanwhile, or vanished, ends.
   */
  async readopt(job: JobActor): Promise<void> {
    const row = job.row;
    if (row.external || job.context.held) return;
    const trace = row.process ?? (row.command === null ? 'vanished' : this.unrecorded(job));
    // The service stopped before the wrapper ran: the command never ran, so it runs now.
    if (trace === 'neverStarted') return this.start(job);
    if (trace === 'vanished' || row.command === null) {
      job.extras.output = 'the process started but vanished before the service recorded it';
      job.send({ type: 'FINISHED', outcome: 'lost', exitCode: null, at: this.options.now() });
      return;
    }
    const info = trace;
    const startedAt = Date.parse(info.startedAt);
    const spec = {
      jobId: job.id,
      command: row.command,
      cwd: row.cwd ?? this.options.workDirs.of(job.owner),
      timeoutS: row.timeoutS ?? this.options.defaultTimeoutS,
      dir: info.dir,
      startedAt,
    };
    const result = await this.runner.adopt(spec, { ...info, startedAt });
    if (result === 'watching') {
      this.reserve(job);
      if (row.process === null && job.state === 'running') await job.touch();
      return;
    }
    this.finish(job, result);
  }

  /**
   * A running job with no process stored: the service died before its
   * wrapper ran, or between spawning it and storing its pid. Found in the
   * job's directory, a wrapper is adopted like a recorded one (not ended
   * `lost`, which would leave a running command unwatched and misreport a
   * finished one); with no trace of it at all, the command never ran.
   */
  private unrecorded(job: JobActor): NonNullable<JobRow['process']> | 'vanished' | 'neverStarted' {
    const trace = findJobWrapper(resolve(this.options.dataDir, 'jobs', job.id), this.options.now());
    if (typeof trace === 'string') return trace;
    job.extras.process = { ...trace, host: this.options.hostId };
    return job.extras.process;
  }

  /** Stops watching; the processes keep running so that a restart can adopt them. */
  close(): Promise<void> {
    return this.runner.close();
  }

  private onExit(jobId: string, exit: ProcessExit): void {
    this.running.free(jobId);
    const job = this.options.job(jobId);
    if (job && job.state === 'running') this.finish(job, exit);
    this.pump();
  }

  private finish(job: JobActor, exit: ProcessExit): void {
    job.extras.output = exit.output;
    job.send({
      type: 'FINISHED',
      outcome: exit.outcome,
      exitCode: exit.exitCode,
      at: exit.finishedAt,
    });
  }
}

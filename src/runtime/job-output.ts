/**
 * A job's output while it runs (SPEC §5 `GET /v1/jobs/:id/output`, the
 * `job.output` feed frame). The output log in the job's directory is the
 * source; where there is none (an external job, a job run by another host,
 * a directory pruned after retention) the stored capped output stands in.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { iso, type Clock } from './clock.js';
import type { Feed } from './feed.js';
import { readOutputRange, sliceOutput, type OutputChunk } from './jobs/output-range.js';
import { JOB_FILES } from './jobs/wrapper.js';

/** Most bytes one `GET …/output` answers with. */
export const OUTPUT_PAGE_BYTES = 64 * 1024;
/** Most bytes one `job.output` frame carries: a tail, not the whole log. */
export const OUTPUT_FRAME_BYTES = 4096;

/** What `GET /v1/jobs/:id/output` answers. */
export interface JobOutputView extends OutputChunk {
  jobId: string;
  state: string;
  /** `log`: the job's output file; `stored`: the capped output kept with the job. */
  source: 'log' | 'stored';
  /** True once the job has finished and `next` is the end: nothing more will come. */
  done: boolean;
}

/** Where a process job's output log is. */
export function outputLogOf(dataDir: string, jobId: string): string {
  return join(dataDir, 'jobs', jobId, JOB_FILES.output);
}

/** Reads one page of a job's output from `since`. */
export async function readJobOutput(
  dataDir: string,
  job: { id: string; state: string; output: string; command: string | null },
  since: number,
): Promise<JobOutputView> {
  const running = job.state === 'running';
  const fromLog =
    job.command === null
      ? null
      : await readOutputRange(outputLogOf(dataDir, job.id), since, OUTPUT_PAGE_BYTES, running);
  const chunk = fromLog ?? sliceOutput(Buffer.from(job.output), since, OUTPUT_PAGE_BYTES);
  return {
    jobId: job.id,
    state: job.state,
    ...chunk,
    source: fromLog ? 'log' : 'stored',
    done: !running && chunk.next >= chunk.size,
  };
}

/** A running process job, as the tail needs it. */
export interface TailedJob {
  id: string;
  owner: string;
  sessionId: string;
}

export interface JobOutputTailOptions {
  feed: Feed;
  clock: Clock;
  dataDir: string;
  /** The process jobs running in this process now. */
  running: () => Iterable<TailedJob>;
  /** How often each job's new output is sent, at most. @defaultValue 500 */
  intervalMs?: number;
}

/**
 * Sends each running job's new output as a `job.output` frame, at most one
 * per job per interval and at most {@link OUTPUT_FRAME_BYTES} each (the newest
 * part: a frame whose `since` is past the client's `next` tells it to read
 * the gap over HTTP). A job that stopped gets one last frame.
 */
export class JobOutputTail {
  private readonly sent = new Map<string, { job: TailedJob; next: number }>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;

  constructor(private readonly options: JobOutputTailOptions) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      // A slow disk must not pile reads up: a tick still running skips the next.
      this.ticking ??= this.tick().finally(() => (this.ticking = null));
    }, this.options.intervalMs ?? 500);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
  }

  /** One round over the running jobs (and those that just stopped). */
  async tick(): Promise<void> {
    const running = new Map<string, TailedJob>();
    for (const job of this.options.running()) running.set(job.id, job);
    for (const [id, entry] of this.sent) {
      if (!running.has(id)) {
        this.sent.delete(id);
        await this.send(entry.job, entry.next, false);
      }
    }
    for (const job of running.values()) {
      await this.send(job, this.sent.get(job.id)?.next ?? 0, true);
    }
  }

  private async send(job: TailedJob, next: number, growing: boolean): Promise<void> {
    let chunk: OutputChunk | null;
    try {
      const path = outputLogOf(this.options.dataDir, job.id);
      const size = (await stat(path)).size;
      if (size <= next) {
        if (growing) this.sent.set(job.id, { job, next });
        return;
      }
      const from = Math.max(next, size - OUTPUT_FRAME_BYTES);
      chunk = await readOutputRange(path, from, OUTPUT_FRAME_BYTES, growing);
    } catch {
      // No log yet (the wrapper has not run), or it went away (the directory was
      // removed): nothing to send now.
      if (growing) this.sent.set(job.id, { job, next });
      return;
    }
    if (chunk === null) return;
    if (growing) this.sent.set(job.id, { job, next: chunk.next });
    if (chunk.next === chunk.since) return;
    this.options.feed.ephemeral(job.owner, {
      at: iso(this.options.clock.now()),
      type: 'job.output',
      sessionId: job.sessionId,
      jobId: job.id,
      data: { since: chunk.since, next: chunk.next, size: chunk.size, output: chunk.output },
    });
  }
}

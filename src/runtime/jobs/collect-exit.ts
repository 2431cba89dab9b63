/** How a job ended, read from what its wrapper and the runner left in its directory. */
import { join } from 'node:path';
import { readCappedFile } from './output-cap.js';
import { decideOutcome, type ProcessExit } from './process-types.js';
import { JOB_FILES, readExitRecord, readKillMarker, type KillReason } from './wrapper.js';

export interface CollectOptions {
  startedAt: number;
  timeoutS: number;
  /** Why the runner killed it, when it did; otherwise the marker on disk says. */
  killReason: KillReason | null;
  /** For a job that ended unwatched: it finished when its exit file was written. */
  exitTimeIsFileTime: boolean;
  now(): number;
  headBytes: number;
  tailBytes: number;
  warn?: ((obj: object, msg?: string) => void) | undefined;
}

/** Reads the exit file, the kill marker and the capped output, and decides the outcome. */
export async function collectExit(dir: string, opts: CollectOptions): Promise<ProcessExit> {
  const [recorded, marker, out] = await Promise.all([
    readExitRecord(dir),
    opts.killReason ?? readKillMarker(dir),
    readCappedFile(join(dir, JOB_FILES.output), {
      headBytes: opts.headBytes,
      tailBytes: opts.tailBytes,
    }),
  ]);
  if (recorded.invalid !== undefined) {
    opts.warn?.({ dir, text: recorded.invalid }, 'exit file holds no exit status');
  }
  const finishedAt =
    opts.exitTimeIsFileTime && recorded.mtimeMs !== null
      ? Math.round(recorded.mtimeMs)
      : opts.now();
  return {
    outcome: decideOutcome(recorded.exitCode, marker),
    exitCode: recorded.exitCode,
    output: out.output,
    truncated: out.truncated,
    finishedAt,
    durationMs: Math.max(0, finishedAt - opts.startedAt),
    timeoutS: opts.timeoutS,
  };
}

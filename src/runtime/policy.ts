import { DEFAULT_LIMITS, type JobLimits } from './job-limits.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** The follow-up policy and limits (SPEC §4 options). */
export interface BatonPolicy {
  /** @defaultValue 5 */
  maxAttempts: number;
  /** @defaultValue 2000 */
  retryBaseMs: number;
  /** @defaultValue 300000 */
  retryMaxMs: number;
  /** One attempt's deadline. @defaultValue 600 */
  agentTimeoutS: number;
  /** A lock holder that keeps the lock longer loses it. @defaultValue agentTimeoutS + 60 s */
  leaseMs: number;
  /** @defaultValue 3600 */
  defaultJobTimeoutS: number;
  /** @defaultValue 12 */
  maxRounds: number;
  limits: JobLimits;
  /** How long shutdown waits for running follow-ups and turns. @defaultValue 10000 */
  drainMs: number;
  /** Time between SIGTERM and SIGKILL when a job is killed. @defaultValue 5000 */
  killGraceMs: number;
  /** Pause before a job whose write failed is rebuilt from the store. @defaultValue 1000 */
  reloadDelayMs: number;
  /** Least time between two `job.output` frames of one job. @defaultValue 500 */
  outputFrameMs: number;
}

export function resolvePolicy(partial: Partial<BatonPolicy> = {}): BatonPolicy {
  const agentTimeoutS = partial.agentTimeoutS ?? 600;
  return {
    maxAttempts: partial.maxAttempts ?? 5,
    retryBaseMs: partial.retryBaseMs ?? 2000,
    retryMaxMs: partial.retryMaxMs ?? 300_000,
    agentTimeoutS,
    leaseMs: partial.leaseMs ?? agentTimeoutS * 1000 + 60_000,
    defaultJobTimeoutS: partial.defaultJobTimeoutS ?? 3600,
    maxRounds: partial.maxRounds ?? 12,
    limits: partial.limits ?? DEFAULT_LIMITS,
    drainMs: partial.drainMs ?? 10_000,
    killGraceMs: partial.killGraceMs ?? 5000,
    reloadDelayMs: partial.reloadDelayMs ?? 1000,
    outputFrameMs: partial.outputFrameMs ?? 500,
  };
}

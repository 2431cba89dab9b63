/**
 * When the crash campaign pulls the plug. Each epoch picks a mode that aims
 * the SIGKILL at one moment of Baton's life: start-up, the end of start-up
 * (recovery of unfinished jobs runs just before the listening line), a random
 * instant under load, a job start in flight, the agent streaming, or the
 * moment the agent's last chunk of a follow-up reaches the feed (its commit
 * is then due within milliseconds).
 */

import type { CrashAgent } from './crash-agent.js';
import { followUpDelta, type FeedTap } from './feed-tap.js';
import type { CrashDriver } from './crash-driver.js';
import type { ServeProcess } from './cli.js';
import type { Rng } from './rng.js';

export type KillMode = 'startup' | 'recovery' | 'random' | 'jobStart' | 'streaming' | 'commit';

export interface KillContext {
  proc: ServeProcess;
  driver: CrashDriver;
  agent: CrashAgent;
  /** True when this epoch runs the openai agent (the fake model): its calls can be aimed at. */
  openai: boolean;
  /** Typical time from spawn to the listening line, ms. */
  startupMs: number;
  r: Rng;
  /** The epoch's feed client. */
  tap: FeedTap;
  /** Longest wait for a random kill after the listening line, ms. */
  maxRandomMs: number;
}

/** What a kill was aimed at, when it was aimed at a follow-up's commit. */
export interface KillTarget {
  jobId: string | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

export function chooseMode(r: Rng, openai: boolean): KillMode {
  const roll = r.next();
  if (roll < 0.2) return 'startup';
  if (roll < 0.32) return 'recovery';
  if (!openai) return roll < 0.6 ? 'random' : roll < 0.75 ? 'jobStart' : 'commit';
  if (roll < 0.45) return 'random';
  if (roll < 0.6) return 'jobStart';
  if (roll < 0.75) return 'streaming';
  return 'commit';
}

/** Waits for the listening line; false if the process exited first. */
async function listening(proc: ServeProcess): Promise<boolean> {
  return proc.listening.then(
    () => true,
    () => false,
  );
}

/** Resolves when `arm` fires its callback, or after `timeoutMs` (the kill then lands anyway). */
function when<T>(
  arm: (fire: (value: T) => void) => () => void,
  timeoutMs: number,
): Promise<T | null> {
  return new Promise((resolve) => {
    let disarm = (): void => {};
    const timer = setTimeout(() => {
      disarm();
      resolve(null);
    }, timeoutMs);
    disarm = arm((value) => {
      clearTimeout(timer);
      disarm();
      resolve(value);
    });
  });
}

/** The end of each follow-up answer: the fake model's, and the offline agent's two. */
const LAST_CHUNK = /(fine|to do|output)\.$/;

/** Resolves at the moment the epoch's kill should land (with the job a commit kill aimed at). */
export async function killMoment(mode: KillMode, ctx: KillContext): Promise<KillTarget> {
  const none: KillTarget = { jobId: null };
  const { proc, driver, agent, r } = ctx;
  switch (mode) {
    case 'startup':
      await sleep(r.next() * ctx.startupMs * 0.7);
      return none;
    case 'recovery':
      await sleep(ctx.startupMs * (0.75 + 0.3 * r.next()));
      return none;
    case 'random':
      if (await listening(proc)) await sleep(r.int(0, ctx.maxRandomMs));
      return none;
    case 'jobStart': {
      if (!(await listening(proc))) return none;
      await sleep(r.int(20, 300));
      const sent = await when<true>((fire) => {
        driver.onJobStartSent = () => fire(true);
        return () => (driver.onJobStartSent = null);
      }, 1500);
      if (sent) await sleep(r.int(0, 6));
      return none;
    }
    case 'streaming': {
      if (!(await listening(proc))) return none;
      const streamMs = await when<number>((fire) => {
        agent.onRequest = (_request, _kind, ms) => fire(ms);
        return () => (agent.onRequest = null);
      }, 2000);
      if (streamMs !== null) await sleep(r.int(5, Math.max(10, streamMs - 5)));
      return none;
    }
    case 'commit': {
      if (!(await listening(proc))) return none;
      const jobId = await when<string>((fire) => {
        ctx.tap.listener = (frame) => {
          const delta = followUpDelta(frame);
          if (delta && LAST_CHUNK.test(delta.delta.trimEnd())) fire(delta.jobId);
        };
        return () => (ctx.tap.listener = null);
      }, 2500);
      if (jobId !== null && r.chance(0.5)) await sleep(r.int(0, 3));
      return { jobId };
    }
  }
}

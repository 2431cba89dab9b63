/**
 * Campaign 5, process groups, under bubblewrap as `baton serve` runs jobs:
 * jobs that fork children, grandchildren, a child that ignores SIGTERM and a
 * backgrounded `nohup`, killed at their deadline; jobs that exit leaving
 * children behind; and a fork bomb, which its process limit must hold. Every
 * member of each job's group must be gone afterwards.
 */

import { liveGroupMembers } from '../../../src/runtime/jobs/proc-identity.js';
import { startTestBaton } from '../../support/baton.js';
import { waitFor } from '../../support/wait.js';
import { membersOfGroups, processesWith } from './orphans.js';

export interface GroupSummary {
  deadlineJobs: number;
  timedOut: number;
  leftoverJobs: number;
  succeeded: number;
  /** Processes found alive afterwards, by marker and by group. */
  survivors: number[];
  followedUp: number;
  /** The fork bomb's process limit, and the most processes its group ever had. */
  bombLimit: number;
  bombPeak: number;
  bombOutcome: string | null;
}

const BOMB_LIMIT = 64;
/** Forks without end (each copy pipes into another in the background), then waits for its deadline. */
const FORK_BOMB = 'bomb() { bomb | bomb & }; bomb 2>/dev/null; sleep 30';

/** A command whose processes all carry `marker` (a unique sleep length) in their command line. */
function forking(marker: string): string {
  return [
    `sh -c 'trap "" TERM; sleep ${marker}1; sleep ${marker}1' &`,
    `(sleep ${marker}2 &) ;`,
    `nohup sleep ${marker}3 >/dev/null 2>&1 &`,
    `sh -c 'sleep ${marker}4 & sleep ${marker}5' &`,
    `sleep ${marker}6`,
  ].join(' ');
}

export async function runGroups(jobs: number): Promise<GroupSummary> {
  const t = await startTestBaton({
    policy: { killGraceMs: 300 },
    sandboxed: { processes: BOMB_LIMIT },
  });
  const base = `${1000 + Math.floor(Math.random() * 8000)}.${process.pid % 1000}`;
  try {
    const session = await t.baton.createSession('alice', {});
    const deadline = [];
    const leftover = [];
    for (let i = 0; i < jobs; i++) {
      const marker = `${base}${i}`;
      deadline.push(
        await t.baton.startJob('alice', session.id, { command: forking(marker), timeoutS: 1 }),
      );
      // Exits at once, leaving its background children in the group.
      leftover.push(
        await t.baton.startJob('alice', session.id, {
          command: `sleep ${marker}7 & sleep ${marker}8 & echo left`,
        }),
      );
    }
    const bomb = await t.baton.startJob('alice', session.id, { command: FORK_BOMB, timeoutS: 2 });
    let bombPeak = 0;
    const bombGroup = await waitFor(async () => (await t.store.getJob(bomb.id))?.process?.pid);
    const sampler = setInterval(() => {
      bombPeak = Math.max(bombPeak, liveGroupMembers(bombGroup).length);
    }, 5);
    const all = [...deadline, ...leftover, bomb];
    const finals = await waitFor(
      async () => {
        const views = await Promise.all(all.map((j) => t.baton.getJob('alice', j.id)));
        return views.every((v) => v.state === 'followedUp' || v.state === 'failed')
          ? views
          : undefined;
      },
      { timeoutMs: 30_000, what: 'every job to be followed up' },
    ).finally(() => clearInterval(sampler));
    const groups = new Set<number>();
    for (const job of all) {
      const pid = (await t.store.getJob(job.id))?.process?.pid;
      if (typeof pid === 'number') groups.add(pid);
    }
    // Stragglers of a job that exited get TERM, then KILL after the grace: give them that long.
    const survivors = await waitFor(
      () => {
        const found = [...new Set([...processesWith(base), ...membersOfGroups(groups)])];
        return found.length === 0 ? [] : undefined;
      },
      { timeoutMs: 5_000, what: 'every job group to be empty' },
    ).catch(() => [...new Set([...processesWith(base), ...membersOfGroups(groups)])]);
    const ids = new Set(deadline.map((j) => j.id));
    return {
      deadlineJobs: deadline.length,
      timedOut: finals.filter((v) => ids.has(v.id) && v.outcome === 'timedOut').length,
      leftoverJobs: leftover.length,
      succeeded: finals.filter((v) => !ids.has(v.id) && v.outcome === 'succeeded').length,
      survivors,
      followedUp: finals.filter((v) => v.state === 'followedUp').length,
      bombLimit: BOMB_LIMIT,
      bombPeak,
      bombOutcome: finals.find((v) => v.id === bomb.id)?.outcome ?? null,
    };
  } finally {
    await t.close();
    for (const pid of processesWith(base)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
}

export function groupsLine(g: GroupSummary): string {
  return (
    `groups: ${g.deadlineJobs} forking jobs killed at their deadline (${g.timedOut} timedOut), ` +
    `${g.leftoverJobs} jobs that exited leaving children (${g.succeeded} succeeded), ` +
    `a fork bomb held at ${g.bombPeak} processes by its limit of ${g.bombLimit} (${g.bombOutcome}), ` +
    `${g.followedUp} followed up, ${g.survivors.length} processes left`
  );
}

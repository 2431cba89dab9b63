/**
 * Campaign 5, process groups: jobs that fork children, grandchildren, a
 * child that ignores SIGTERM and a backgrounded `nohup`, killed at their
 * deadline; and jobs that exit leaving children behind. Every member of each
 * job's group must be gone afterwards.
 */

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
}

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
  const t = await startTestBaton({ policy: { killGraceMs: 300 } });
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
    const all = [...deadline, ...leftover];
    const finals = await waitFor(
      async () => {
        const views = await Promise.all(all.map((j) => t.baton.getJob('alice', j.id)));
        return views.every((v) => v.state === 'followedUp' || v.state === 'failed')
          ? views
          : undefined;
      },
      { timeoutMs: 30_000, what: 'every job to be followed up' },
    );
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
    `${g.followedUp} followed up, ${g.survivors.length} processes left`
  );
}

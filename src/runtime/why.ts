import { deadlineOf } from '../machines/job.machine.js';
import type { LockView } from '../machines/session.machine.js';
import { iso } from './clock.js';
import type { JobActor } from './job-actor.js';

export interface WhyFacts {
  lock: LockView;
  /** What holds the job in `running.queued`, e.g. "the server's limit of 8 running jobs". */
  heldBy: string | null;
}

/**
 * Says in words what a job is waiting for (SPEC §5 `why`), from its machine
 * snapshot and the session's lock: the answer to "why hasn't it moved?".
 */
export function describeWhy(job: JobActor, facts: WhyFacts): string {
  const context = job.context;
  const row = job.row;
  switch (job.state) {
    case 'running': {
      const value = job.snapshot.value as { running?: string };
      if (value.running === 'queued') {
        return `queued: waiting for ${facts.heldBy ?? 'a free slot under the running-jobs limit'}`;
      }
      if (row.external) {
        const deadline = deadlineOf(context);
        const by =
          deadline === null
            ? ''
            : deadline.outcome === 'lost'
              ? `; next heartbeat due by ${iso(deadline.at)}`
              : `; must be completed by ${iso(deadline.at)}`;
        return `running elsewhere: waiting for POST /v1/jobs/:id/complete${by}`;
      }
      const process = job.extras.process;
      if (!process) return 'starting the process';
      const deadline =
        row.timeoutS === null
          ? ''
          : `, deadline ${iso(Date.parse(process.startedAt) + row.timeoutS * 1000)}`;
      return `running: process ${process.pid} since ${process.startedAt}${deadline}`;
    }
    case 'completed':
      return 'finished; about to ask for the session';
    case 'awaitingIdleSession': {
      const holder = facts.lock.holder;
      if (!holder) return 'waiting for the session lock';
      if (holder.id === job.id) return 'the session lock was just granted';
      const who =
        holder.kind === 'live' ? `live turn ${holder.id}` : `follow-up of job ${holder.id}`;
      const ahead = facts.lock.queue.findIndex((w) => w.id === job.id);
      const place = ahead > 0 ? `; ${ahead} ahead in the queue` : '';
      return `waiting for the session: ${who} holds it since ${holder.since}${place}`;
    }
    case 'continuing':
      return `agent follow-up running (attempt ${context.attempts} of ${context.maxAttempts})`;
    case 'retrying': {
      const at = context.nextRetryAt === null ? 'soon' : `at ${iso(context.nextRetryAt)}`;
      const last = context.lastError
        ? ` after ${context.lastError.code}: ${context.lastError.message}`
        : '';
      return `retry ${context.attempts + 1} of ${context.maxAttempts} ${at}${last}`;
    }
    case 'followedUp':
      return context.coalescedInto
        ? `done: answered together with job ${context.coalescedInto}`
        : `done: continuation ${context.followUp?.messageId ?? ''} stored`.trimEnd();
    case 'failed': {
      const last = context.lastError
        ? `: ${context.lastError.code}: ${context.lastError.message}`
        : '';
      return `gave up after ${context.attempts} attempts${last}; a notice was stored in the session`;
    }
    case 'cancelled':
      return 'cancelled; no follow-up';
    case 'skipped':
      return 'the session was deleted; no follow-up';
  }
}

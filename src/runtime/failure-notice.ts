import { describeOutcome, type TriggerJob } from './agents/trigger.js';
import type { JobActor } from './job-actor.js';
import type { Batch, JobRow, MessageRow } from './store/store.js';
import { messageView } from './views.js';

/**
 * The `system` message stored, in the same commit as the move to `failed`,
 * when a job's follow-up attempts are exhausted: the user always hears back.
 */
export function failureNotice(
  job: JobActor,
  row: Omit<JobRow, 'version'>,
  messageId: string,
  at: string,
): Batch {
  const context = job.context;
  const what = row.command ? `\`${row.command}\`` : (row.name ?? 'external job');
  const error = context.lastError
    ? `${context.lastError.code}: ${context.lastError.message}`
    : 'unknown error';
  const outcome = describeOutcome({
    outcome: (row.outcome ?? 'lost') as TriggerJob['outcome'],
    exitCode: row.exitCode,
    timeoutS: row.timeoutS,
  });
  const message: MessageRow = {
    id: messageId,
    sessionId: job.sessionId,
    owner: job.owner,
    role: 'system',
    content:
      `Background job ${job.id} (${what}) ${outcome}, but the agent could not continue after ` +
      `${context.attempts} attempts (${error}). Retry it with POST /v1/jobs/${job.id}/retry.`,
    metadata: {
      bgJobId: job.id,
      kind: 'followUpFailed',
      attempts: context.attempts,
      error: context.lastError,
    },
    createdAt: at,
  };
  return {
    messages: [message],
    events: [
      {
        owner: job.owner,
        at,
        type: 'message.created',
        sessionId: job.sessionId,
        jobId: job.id,
        data: { message: messageView(message) },
      },
    ],
  };
}

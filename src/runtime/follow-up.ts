import { answeredContext, type FollowUpOutput } from '../machines/job.machine.js';
import type { Agent, AgentMessage, AgentResult, AgentTools } from './agents/agent.js';
import { AgentError } from './agents/agent.js';
import { buildFollowUpTrigger, capResult, type TriggerJob } from './agents/trigger.js';
import { iso } from './clock.js';
import { deadlineSignal } from './deadline.js';
import type { Feed } from './feed.js';
import type { Ids } from './ids.js';
import type { JobActor } from './job-actor.js';
import { followUpTurnKey, openTurnJournal } from './turn-journal.js';
import { messageView } from './views.js';
import type { Batch, JobRow, MessageRow, SessionRow, Store } from './store/store.js';

export interface FollowUpDeps {
  store: Store;
  agent: Agent;
  feed: Feed;
  ids: Ids;
  now(): number;
  /** One attempt's deadline. */
  agentTimeoutMs: number;
  maxRounds: number;
  /** Jobs of the session that live in this process. */
  jobsOf(sessionId: string): JobActor[];
  /** Commits a batch in the session's write queue and returns the new job versions. */
  commit(sessionId: string, build: () => Batch | null): Promise<unknown>;
  tools(owner: string, sessionId: string, turnKey: string): AgentTools;
}

/** Raised when the session disappeared under a follow-up; the runtime ends the job `skipped`. */
export class SessionGoneError extends Error {
  override readonly name = 'SessionGoneError';
  readonly code = 'session_deleted';
}

/** Turns a session's stored messages into the agent's conversation. */
export function conversation(session: SessionRow, messages: MessageRow[]): AgentMessage[] {
  const out: AgentMessage[] = [];
  if (session.systemPrompt) out.push({ role: 'system', content: session.systemPrompt });
  for (const message of messages) {
    // A message that waits for its own turn is not in the history yet; a
    // turn's failure notice is for the person, not the model.
    if (message.queued || message.metadata['kind'] === 'turnFailed') continue;
    out.push({ role: message.role, content: message.content });
  }
  return out;
}

export function triggerJob(row: Omit<JobRow, 'version'>): TriggerJob {
  return {
    jobId: row.id,
    command: row.command,
    name: row.name,
    outcome: (row.outcome ?? 'lost') as TriggerJob['outcome'],
    exitCode: row.exitCode,
    timeoutS: row.timeoutS,
    output: row.output,
  };
}

/**
 * One follow-up attempt for `leader` and every job of its session that is
 * waiting for the lock too (they are answered together, SPEC §1). Runs the
 * agent, then commits the continuation, every answered job's move to
 * `followedUp` and their events in one transaction, and only then resolves:
 * if the commit fails, the attempt fails and is retried.
 */
export async function runFollowUp(
  deps: FollowUpDeps,
  leader: JobActor,
  signal: AbortSignal,
): Promise<FollowUpOutput> {
  await leader.persisted();
  const session = await deps.store.getSession(leader.sessionId);
  if (!session) throw new SessionGoneError(`session ${leader.sessionId} was deleted`);
  const waiting = () =>
    deps
      .jobsOf(leader.sessionId)
      .filter((j) => j !== leader && j.state === 'awaitingIdleSession' && !j.finalCommitted);
  const joined = waiting();
  const answered = [leader, ...joined];
  const history = await deps.store.listMessages(leader.sessionId);
  const trigger = buildFollowUpTrigger(answered.map((j) => triggerJob(j.row)));
  const messages = [...conversation(session, history), { role: 'user' as const, content: trigger }];

  const deadline = deadlineSignal(signal, deps.agentTimeoutMs);
  const result = await runAgent(deps, leader, messages, deadline.signal).finally(deadline.clear);

  const ids = answered.map((j) => j.id);
  const at = iso(deps.now());
  const metadata: Record<string, unknown> = {
    bgJobId: leader.id,
    ...(ids.length > 1 ? { bgJobIds: ids } : {}),
    bgResult: capResult(
      answered
        .map((j) => (ids.length > 1 ? `[${j.id}]\n${j.row.output}` : j.row.output))
        .join('\n'),
      4000,
    ),
    toolEvents: result.toolEvents,
    model: result.model,
  };
  const output: FollowUpOutput = {
    messageId: deps.ids.message(),
    jobIds: ids,
    content: result.content,
    metadata,
  };
  if (signal.aborted) throw new AgentError('agent_aborted', 'the follow-up was aborted');

  const members: JobActor[] = [];
  const undo: (() => void)[] = [];
  await deps
    .commit(leader.sessionId, () => {
      // Jobs cancelled while the agent ran are no longer answered by this message.
      const still = new Set(waiting());
      members.push(leader, ...joined.filter((j) => still.has(j)));
      output.jobIds = members.map((j) => j.id);
      if (output.jobIds.length > 1) metadata['bgJobIds'] = output.jobIds;
      else delete metadata['bgJobIds'];
      const writes: Batch['jobs'] = [];
      const events: Batch['events'] = [];
      for (const job of members) {
        const next = {
          value: 'followedUp',
          context: answeredContext(job.context, output, job === leader ? null : leader.id),
        };
        const row = job.buildRow(next, ['followedUp']);
        row.why =
          job === leader
            ? `done: continuation ${output.messageId} stored`
            : `done: answered together with job ${leader.id}`;
        // From here on nothing else may move these jobs: this commit decides them.
        undo.push(job.checkpoint());
        job.finalCommitted = true;
        writes.push({ row, expectedVersion: job.adoptWritten(row, next) });
        events.push(...job.stateEvents(row, ['followedUp']));
      }
      const message: MessageRow = {
        id: output.messageId,
        sessionId: leader.sessionId,
        owner: leader.owner,
        role: 'assistant',
        content: output.content,
        metadata,
        createdAt: at,
        answersJobs: output.jobIds,
      };
      const created = {
        owner: leader.owner,
        at,
        type: 'message.created',
        sessionId: leader.sessionId,
        jobId: leader.id,
        data: { message: messageView(message) },
      };
      return { messages: [message], jobs: writes, events: [created, ...events] };
    })
    .catch((error: unknown) => {
      for (const restore of undo) restore();
      throw error;
    });
  for (const job of members) job.stored(job.row);
  // The followers move now; their own writes find the rows already stored.
  for (const job of members) {
    if (job !== leader) job.settle({ type: 'COALESCED', leaderId: leader.id, followUp: output });
  }
  return output;
}

async function runAgent(
  deps: FollowUpDeps,
  leader: JobActor,
  messages: AgentMessage[],
  signal: AbortSignal,
): Promise<AgentResult> {
  const at = () => iso(deps.now());
  const base = { sessionId: leader.sessionId, jobId: leader.id };
  // A retried follow-up goes on from the rounds and tool results stored before.
  const turnKey = followUpTurnKey(leader.id);
  const journal = await openTurnJournal(deps.store, deps.commit, leader.sessionId, turnKey);
  const result = await deps.agent.run({
    sessionId: leader.sessionId,
    messages,
    maxRounds: deps.maxRounds,
    signal,
    journal: journal.entries,
    record: journal.record,
    tools: deps.tools(leader.owner, leader.sessionId, turnKey),
    onDelta: (delta) =>
      deps.feed.ephemeral(leader.owner, { ...base, at: at(), type: 'turn.delta', data: { delta } }),
    onStep: (round) =>
      deps.feed.ephemeral(leader.owner, { ...base, at: at(), type: 'turn.step', data: { round } }),
    onTool: (event) =>
      deps.feed.ephemeral(leader.owner, {
        ...base,
        at: at(),
        type: 'turn.tool',
        data: { ...event },
      }),
  });
  if (signal.aborted) throw new AgentError('agent_aborted', 'the attempt passed its deadline');
  if (result.content.trim() === '' && result.toolEvents.length === 0) {
    throw new AgentError('agent_empty', 'the agent replied with neither text nor tool events');
  }
  return result;
}

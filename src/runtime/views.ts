import type { LockView } from '../machines/session.machine.js';
import type { JobRow, MessageRow, SessionRow } from './store/store.js';

/** A session as the API shows it (SPEC §5). */
export interface SessionView {
  id: string;
  owner: string;
  title: string;
  systemPrompt: string | null;
  createdAt: string;
  lock?: LockView;
}

export interface MessageView {
  id: string;
  sessionId: string;
  role: MessageRow['role'];
  content: string;
  metadata: Record<string, unknown>;
  createdAt: string;
  /** Present while a user message waits for its turn: it is not in the history yet. */
  queued?: true;
}

export interface JobView {
  id: string;
  sessionId: string;
  command: string | null;
  name: string | null;
  labels: Record<string, string>;
  external: boolean;
  state: string;
  outcome: string | null;
  exitCode: number | null;
  attempts: number;
  output: string;
  createdAt: string;
  finishedAt: string | null;
  followedUpAt: string | null;
  history: { state: string; at: string }[];
  why: string;
}

export function sessionView(row: SessionRow, lock?: LockView): SessionView {
  return {
    id: row.id,
    owner: row.owner,
    title: row.title,
    systemPrompt: row.systemPrompt,
    createdAt: row.createdAt,
    ...(lock ? { lock } : {}),
  };
}

export function messageView(row: MessageRow): MessageView {
  return {
    id: row.id,
    sessionId: row.sessionId,
    role: row.role,
    content: row.content,
    metadata: row.metadata,
    createdAt: row.createdAt,
    ...(row.queued ? { queued: true as const } : {}),
  };
}

export function jobView(row: Omit<JobRow, 'version'>, why = row.why): JobView {
  return {
    id: row.id,
    sessionId: row.sessionId,
    command: row.command,
    name: row.name,
    labels: row.labels,
    external: row.external,
    state: row.state,
    outcome: row.outcome,
    exitCode: row.exitCode,
    attempts: row.attempts,
    output: row.output,
    createdAt: row.createdAt,
    finishedAt: row.finishedAt,
    followedUpAt: row.followedUpAt,
    history: row.history,
    why,
  };
}

/** Whether a job has every label asked for: a key alone, or a key with that value. */
export function hasLabels(
  row: Pick<JobRow, 'labels'>,
  wanted: readonly { key: string; value: string | null }[],
): boolean {
  return wanted.every(({ key, value }) =>
    value === null ? Object.hasOwn(row.labels, key) : row.labels[key] === value,
  );
}

/**
 * Rows as the stores select them (snake_case columns, JSON as text) and the
 * one mapping from them to the Store's types, shared by every backend.
 */
import type {
  JobHistoryEntry,
  JobProcessInfo,
  JobRow,
  MessageRole,
  MessageRow,
  OpenTurn,
  SessionRow,
  StoredEvent,
} from './store.js';

/** A row of `sessions` as selected. */
export interface SessionRecord {
  id: string;
  owner: string;
  title: string;
  system_prompt: string | null;
  created_at: string;
}

/** A row of `messages` with the ids of the jobs it answers, in order. */
export interface MessageRecord {
  id: string;
  session_id: string;
  owner: string;
  role: string;
  content: string;
  /** JSON text: the pool's type parsers leave `json` columns unparsed. */
  metadata: string;
  created_at: string;
  answers_jobs: string[];
  /** SQLite answers 0 or 1, PostgreSQL a boolean. */
  queued: number | boolean;
}

/** A row of `jobs`; the `json` columns arrive as text. */
export interface JobRecord {
  id: string;
  session_id: string;
  owner: string;
  command: string | null;
  cwd: string | null;
  timeout_s: number | null;
  external: boolean;
  name: string | null;
  /** JSON text. */
  labels: string;
  state: string;
  outcome: string | null;
  exit_code: number | null;
  attempts: number;
  output: string;
  created_at: string;
  finished_at: string | null;
  followed_up_at: string | null;
  history: string;
  why: string;
  snapshot: string;
  process: string | null;
  version: number;
}

/** A row of `events`; `seq` is a bigint, which the pool parses to a number. */
export interface EventRecord {
  owner: string;
  seq: number;
  at: string;
  type: string;
  session_id: string | null;
  job_id: string | null;
  turn_id: string | null;
  data: string;
}

export function toSession(r: SessionRecord): SessionRow {
  return {
    id: r.id,
    owner: r.owner,
    title: r.title,
    systemPrompt: r.system_prompt,
    createdAt: r.created_at,
  };
}

export function toMessage(r: MessageRecord): MessageRow {
  const message: MessageRow = {
    id: r.id,
    sessionId: r.session_id,
    owner: r.owner,
    role: r.role as MessageRole,
    content: r.content,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    createdAt: r.created_at,
  };
  if (r.answers_jobs.length > 0) message.answersJobs = r.answers_jobs;
  if (r.queued) message.queued = true;
  return message;
}

export function toJob(r: JobRecord): JobRow {
  return {
    id: r.id,
    sessionId: r.session_id,
    owner: r.owner,
    command: r.command,
    cwd: r.cwd,
    timeoutS: r.timeout_s,
    external: r.external,
    name: r.name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    state: r.state,
    outcome: r.outcome,
    exitCode: r.exit_code,
    attempts: r.attempts,
    output: r.output,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    followedUpAt: r.followed_up_at,
    history: JSON.parse(r.history) as JobHistoryEntry[],
    why: r.why,
    snapshot: JSON.parse(r.snapshot) as unknown,
    process: r.process === null ? null : (JSON.parse(r.process) as JobProcessInfo),
    version: r.version,
  };
}

export function toEvent(r: EventRecord): StoredEvent {
  return {
    owner: r.owner,
    seq: r.seq,
    at: r.at,
    type: r.type,
    sessionId: r.session_id,
    jobId: r.job_id,
    turnId: r.turn_id,
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
}

/** A row of `open_turns`. */
export interface OpenTurnRecord {
  turn_id: string;
  session_id: string;
  owner: string;
  message_id: string;
}

export function toOpenTurn(r: OpenTurnRecord): OpenTurn {
  return { turnId: r.turn_id, sessionId: r.session_id, owner: r.owner, messageId: r.message_id };
}

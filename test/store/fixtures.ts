/**
 * Row builders for store tests: valid rows with every field filled, which a
 * test overrides where it matters.
 */
import type { JobRow, MessageRow, NewEvent, SessionRow } from '../../src/runtime/store/store.js';

/** A job as a caller writes it: the store assigns the version. */
export type NewJob = Omit<JobRow, 'version'>;

let counter = 0;
/**
 * A namespace unique to one test, so the suite also holds against a database
 * shared between tests (a PostgreSQL server) where rows from earlier tests stay.
 */
export function namespace() {
  counter += 1;
  const ns = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}${counter}`;
  return {
    owner: `owner-${ns}`,
    otherOwner: `other-${ns}`,
    id: (kind: string, n: number | string = 1) => `${kind}-${ns}-${n}`,
  };
}

/** A fixed timestamp `minute` minutes into the test day. */
export function at(minute: number): string {
  return new Date(Date.UTC(2026, 10, 25, 10, minute)).toISOString();
}

/** A session of `owner` with no system prompt. */
export function sessionRow(owner: string, id: string, extra: Partial<SessionRow> = {}): SessionRow {
  return { id, owner, title: 'a session', systemPrompt: null, createdAt: at(0), ...extra };
}

/** A running command job with a one-entry history. */
export function jobRow(
  owner: string,
  sessionId: string,
  id: string,
  extra: Partial<NewJob> = {},
): NewJob {
  return {
    id,
    sessionId,
    owner,
    command: 'sleep 1',
    cwd: null,
    timeoutS: null,
    external: false,
    name: null,
    labels: {},
    state: 'running',
    outcome: null,
    exitCode: null,
    attempts: 0,
    output: '',
    createdAt: at(1),
    finishedAt: null,
    followedUpAt: null,
    history: [{ state: 'running', at: at(1) }],
    why: 'waiting for the process to exit',
    snapshot: { value: 'running', context: {} },
    process: null,
    ...extra,
  };
}

/** A user message answering no job. */
export function messageRow(
  owner: string,
  sessionId: string,
  id: string,
  extra: Partial<MessageRow> = {},
): MessageRow {
  return {
    id,
    sessionId,
    owner,
    role: 'user',
    content: 'hello',
    metadata: {},
    createdAt: at(2),
    ...extra,
  };
}

/** An event with empty data and no session, job or turn. */
export function eventOf(owner: string, type: string, extra: Partial<NewEvent> = {}): NewEvent {
  return { owner, at: at(3), type, data: {}, ...extra };
}

/** Resolves to what `promise` rejected with; fails the test when it resolves. */
export async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
}

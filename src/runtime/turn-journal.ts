/**
 * The journal of one agent turn: the steps earlier attempts stored, and the
 * way this attempt stores its own, each in the session's write order (fenced
 * like every write of the session) before the agent takes the next step.
 */
import { createHash } from 'node:crypto';
import { journalEntries, type JournalEntry } from './agents/agent.js';
import type { Batch, Store } from './store/store.js';

export interface TurnJournal {
  /** What earlier attempts of the turn stored, in order. */
  entries: JournalEntry[];
  /** Stores the next step; resolves once it is durable. */
  record(entry: JournalEntry): Promise<void>;
}

/** A follow-up is the turn of the job it answers first; a live turn has its own id. */
export function followUpTurnKey(jobId: string): string {
  return `followUp:${jobId}`;
}

export function liveTurnKey(turnId: string): string {
  return `live:${turnId}`;
}

export async function openTurnJournal(
  store: Store,
  commit: (sessionId: string, build: () => Batch | null) => Promise<unknown>,
  sessionId: string,
  turnKey: string,
): Promise<TurnJournal> {
  const entries = journalEntries(await store.readJournal(turnKey));
  let step = entries.length;
  return {
    entries,
    record: async (entry) => {
      const at = step;
      step += 1;
      await commit(sessionId, () => ({ journal: [{ turnKey, sessionId, step: at, entry }] }));
    },
  };
}

/**
 * The id of the job a turn's tool call starts: the same call of the same
 * turn always names the same job, so asking again finds it instead of
 * starting a second one. Made of what `ID_PATTERN` (ids.ts) accepts.
 */
export function toolJobId(turnKey: string, callKey: string): string {
  const digest = createHash('sha256').update(`${turnKey}\n${callKey}`).digest('hex');
  return `j_${digest.slice(0, 32)}`;
}

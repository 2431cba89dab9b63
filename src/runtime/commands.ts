import { BatonError, type ErrorCode } from './errors.js';
import { SessionGoneError } from './follow-up.js';
import type { CompleteJobBody, StartJobBody } from './options.js';
import { DuplicateFollowUpError, StoreConflictError, StoreWriteError } from './store/store.js';

/**
 * What one process asks the owner of a session to do (SPEC §8): every call
 * that changes a session or its jobs runs where the session's actors live.
 *
 * A command's key is its row id in the store. The owner records the result
 * in the same transaction as the command's effect (the job's write, the
 * message, the deletion), so an owner that dies after the effect leaves a
 * command that is done, never one that a new owner would do again. Ids are
 * chosen by the sender as well, so that a command whose effect was stored
 * without its result (by an older build) is still recognised.
 */
export type Command =
  | {
      kind: 'sendMessage';
      owner: string;
      sessionId: string;
      content: string;
      turnId: string;
      messageId: string;
      /** `reject`: refused with `session_busy` while the session is busy. */
      onBusy?: 'enqueue' | 'reject';
    }
  | { kind: 'startJob'; owner: string; sessionId: string; jobId: string; body: StartJobBody }
  | { kind: 'completeJob'; owner: string; sessionId: string; jobId: string; body: CompleteJobBody }
  | { kind: 'cancelJob'; owner: string; sessionId: string; jobId: string }
  | { kind: 'heartbeatJob'; owner: string; sessionId: string; jobId: string }
  | { kind: 'retryJob'; owner: string; sessionId: string; jobId: string }
  | { kind: 'deleteSession'; owner: string; sessionId: string }
  | { kind: 'lockView'; owner: string; sessionId: string };

export type CommandResult =
  { ok: true; value: unknown } | { ok: false; code: ErrorCode; message: string };

export interface StoredCommand {
  id: number;
  command: Command;
  /**
   * The result recorded with the command's effect by an owner that then
   * died, or null. A `sendMessage` keeps its command open after its answer
   * until its live turn has ended, so that a new owner runs the turn.
   */
  result: CommandResult | null;
}

/** The message of every `internal` answer: what went wrong stays in the log. */
export const INTERNAL_MESSAGE = 'internal error';

/**
 * The code and message a client is answered for an error of the runtime, or
 * null for an unexpected one. The only classification: a call run here and
 * one forwarded to the session's owner answer alike (the transport maps the
 * code to a status).
 */
export function errorOf(error: unknown): { code: ErrorCode; message: string } | null {
  if (error instanceof BatonError) return { code: error.code, message: error.message };
  if (error instanceof StoreWriteError) {
    return {
      code: 'store_unavailable',
      message: 'the store cannot be reached; nothing was written',
    };
  }
  if (error instanceof StoreConflictError || error instanceof DuplicateFollowUpError) {
    return { code: 'conflict', message: 'another writer changed this resource; read it again' };
  }
  if (error instanceof SessionGoneError) return { code: 'session_deleted', message: error.message };
  return null;
}

/**
 * Runs a command and turns its outcome, error included, into data that can
 * cross processes; an unexpected error goes to `onUnexpected` (the log).
 */
export async function settle(
  run: () => Promise<unknown>,
  onUnexpected: (error: unknown) => void = () => {},
): Promise<CommandResult> {
  try {
    return { ok: true, value: (await run()) ?? null };
  } catch (error) {
    const known = errorOf(error);
    if (known) return { ok: false, ...known };
    onUnexpected(error);
    return { ok: false, code: 'internal', message: INTERNAL_MESSAGE };
  }
}

/** The value of a result, or its error thrown as a {@link BatonError}. */
export function unwrap<T>(result: CommandResult): T {
  if (result.ok) return result.value as T;
  throw new BatonError(result.code, result.message);
}

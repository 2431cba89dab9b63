import { BatonError, type ErrorCode } from './errors.js';
import type { CompleteJobBody, StartJobBody } from './options.js';

/**
 * What one process asks the owner of a session to do (SPEC §8): every call
 * that changes a session or its jobs runs where the session's actors live.
 * Ids are chosen by the sender, so that a command run twice (its owner died
 * after running it, before saying so) is recognised.
 */
export type Command =
  | {
      kind: 'sendMessage';
      owner: string;
      sessionId: string;
      content: string;
      turnId: string;
      messageId: string;
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
}

/** Runs a command and turns its outcome, error included, into data that can cross processes. */
export async function settle(run: () => Promise<unknown>): Promise<CommandResult> {
  try {
    return { ok: true, value: (await run()) ?? null };
  } catch (error) {
    if (error instanceof BatonError) return { ok: false, code: error.code, message: error.message };
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'store_unavailable') {
      return { ok: false, code: 'store_unavailable', message: String((error as Error).message) };
    }
    return {
      ok: false,
      code: 'internal',
      message: 'the owner of the session failed to run the call',
    };
  }
}

/** The value of a result, or its error thrown as a {@link BatonError}. */
export function unwrap<T>(result: CommandResult): T {
  if (result.ok) return result.value as T;
  throw new BatonError(result.code, result.message);
}

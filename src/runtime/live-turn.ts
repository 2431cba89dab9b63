import { retryDelayMs } from '../machines/retry-delay.js';
import { AgentError, type Agent, type AgentResult, type AgentTools } from './agents/agent.js';
import { iso } from './clock.js';
import { deadlineSignal } from './deadline.js';
import type { Feed } from './feed.js';
import { conversation } from './follow-up.js';
import type { Ids } from './ids.js';
import type { SessionLocks } from './session-locks.js';
import type { Batch, MessageRow, SessionRow, Store } from './store/store.js';
import { liveTurnKey, openTurnJournal } from './turn-journal.js';
import { messageView } from './views.js';

/**
 * Why a running turn is stopped from outside: its lock's lease ran out (it
 * ends with a notice), or it is handed over (shutdown, or another process
 * took the session): it writes nothing more, and whoever runs the session
 * next finds it open and runs it again from its journal.
 */
export type TurnAbort = 'revoked' | 'handover';

export interface LiveTurnDeps {
  store: Store;
  agent: Agent;
  feed: Feed;
  ids: Ids;
  locks: SessionLocks;
  now(): number;
  random(): number;
  agentTimeoutMs: number;
  maxRounds: number;
  /** Attempts of a turn whose agent fails, and their backoff (the follow-up policy). */
  retry: { maxAttempts: number; baseMs: number; maxMs: number; leaseMs: number };
  commit(sessionId: string, build: () => Batch | null): Promise<unknown>;
  tools(owner: string, sessionId: string, turnKey: string): AgentTools;
  /** Turns queued or running in this process (turn id → session id), never started twice. */
  started: Map<string, string>;
  /** Registers the turn's run so that shutdown can wait for it or hand it over. */
  track(
    turnId: string,
    sessionId: string,
    run: { done: Promise<void>; abort: (reason: TurnAbort) => void },
  ): void;
  onError(error: unknown): void;
}

export interface LiveTurn {
  /** Whether the turn has the session lock (granted, not yet released). */
  holdsLock(): boolean;
}

/** What the person reads when their message could not be answered. */
export function turnFailedText(attempts: number, error: string): string {
  const tries = attempts === 1 ? 'once' : `${attempts} times`;
  return (
    `I could not answer this message: I tried ${tries} and the last try failed (${error}). ` +
    'Send it again to retry.'
  );
}

/**
 * A live turn: the user's message is queued for storing (`stored` settles
 * when it is); the agent answers once the session's lock is granted and the
 * message is stored, and the lock is released on every path (answer, notice,
 * abort, lease expiry, deleted session, message not stored).
 *
 * Every message ends with an answer or a notice. A failed attempt is retried
 * with backoff while attempts remain and the lock's lease leaves room for
 * another; each attempt goes on from the turn's journal (no round asked
 * again, no tool run twice). Then a notice (`metadata.kind: turnFailed`) is
 * stored. A turn handed over (shutdown, session lost) stays open in the store
 * (`open_turns`): a restart, or the session's next owner, runs it again.
 *
 * A message that had to wait for the lock is stored queued (SPEC §3a
 * `enqueue`): it enters the history, after whatever was stored while it
 * waited (a follow-up's continuation), in the write that starts the turn, so
 * the stored order is the order the model saw. `userMessage.row` is the row
 * as the caller stores it; a turn run again reads it from the store and
 * enters it only if it is still queued.
 *
 * The lock is asked for at once, not once the message is stored: follow-ups
 * ask when their job's write is queued too, so the lock goes in the order in
 * which the session's writes were queued, and a follow-up never takes the
 * lock ahead of a user message stored before it.
 *
 * `command` is the forwarded command that sent the message: it stays open
 * while the turn runs, and the turn's last write ends it, so that the
 * process that takes the session over from an owner that died runs the turn.
 */
export function startLiveTurn(
  deps: LiveTurnDeps,
  session: SessionRow,
  turnId: string,
  userMessage: { id: string; row: MessageRow | null },
  stored: Promise<unknown>,
  command?: number,
): LiveTurn {
  if (deps.started.has(turnId)) return { holdsLock: () => false };
  deps.started.set(turnId, session.id);
  const controller = new AbortController();
  let holding = false;
  const event = (type: string, data: Record<string, unknown>) => ({
    owner: session.owner,
    at: iso(deps.now()),
    type,
    sessionId: session.id,
    turnId,
    data,
  });
  /** The turn's last write: it closes the turn and the command that sent it. */
  const ending = {
    closedTurns: [turnId],
    ...(command === undefined ? {} : { commands: [{ id: command, done: true }] }),
  };
  /** The message as it enters the history, while it still has to. */
  let entering: MessageRow | null = null;
  const enter = (): Pick<Batch, 'enteredMessages' | 'events'> => {
    const row = entering;
    entering = null;
    return row
      ? {
          enteredMessages: [row.id],
          events: [event('message.created', { message: messageView(row) })],
        }
      : { events: [] };
  };
  /** Ends the turn with `outcome` (an answer or a notice), or none (the session is gone). */
  const end = (outcome: MessageRow | null, error?: string) =>
    deps.commit(session.id, () => {
      // A turn that failed before it started still puts its message in the history.
      const entered = enter();
      return {
        ...entered,
        ...(outcome ? { messages: [outcome] } : {}),
        events: [
          ...(entered.events ?? []),
          ...(outcome ? [event('message.created', { message: messageView(outcome) })] : []),
          event('turn.finished', error === undefined ? { ok: true } : { ok: false, error }),
        ],
        ...ending,
      };
    });
  let grantedAt = 0;
  let attempt = 0;
  const handedOver = () => controller.signal.aborted && controller.signal.reason === 'handover';
  const over = () => deps.started.delete(turnId);

  deps.locks.acquire(session.id, 'live', turnId, {
    granted: () => {
      holding = true;
      const done = run().finally(() => {
        holding = false;
        over();
        deps.locks.release(session.id, turnId, controller.signal.aborted ? 'aborted' : 'done');
      });
      deps.track(turnId, session.id, { done, abort: (reason) => controller.abort(reason) });
    },
    revoked: () => controller.abort('revoked' satisfies TurnAbort),
    gone: () => {
      controller.abort();
      over();
      // No turn without its message: the caller was told the write failed.
      stored.then(() => end(null, 'the session was deleted')).catch(deps.onError);
    },
  });
  // The message could not be stored: the caller is told, and the turn leaves the queue.
  stored.catch(() => {
    over();
    deps.locks.release(session.id, turnId, 'aborted');
  });
  return { holdsLock: () => holding };

  async function run(): Promise<void> {
    try {
      await stored;
    } catch {
      return;
    }
    grantedAt = deps.now();
    try {
      const row =
        userMessage.row ??
        (await deps.store.listMessages(session.id)).find((m) => m.id === userMessage.id) ??
        null;
      if (row?.queued) {
        const { queued: _, ...inHistory } = row;
        entering = inHistory;
      }
      await deps.commit(session.id, () => {
        const entered = enter();
        return { ...entered, events: [...(entered.events ?? []), event('turn.started', {})] };
      });
      for (;;) {
        attempt += 1;
        try {
          const result = await attemptOnce();
          await end({
            id: deps.ids.message(),
            sessionId: session.id,
            owner: session.owner,
            role: 'assistant',
            content: result.content,
            metadata: { turnId, toolEvents: result.toolEvents, model: result.model },
            createdAt: iso(deps.now()),
          });
          return;
        } catch (error) {
          if (handedOver()) return;
          const delay = retryIn(error);
          if (delay === null) throw error;
          await pause(delay);
          if (handedOver()) return;
        }
      }
    } catch (error) {
      if (handedOver()) return;
      const why = reason(error);
      await end(notice(Math.max(attempt, 1), why), why).catch(deps.onError);
    }
  }

  /** One run of the agent, from the history and the turn's journal as stored now. */
  async function attemptOnce(): Promise<AgentResult> {
    const history = await deps.store.listMessages(session.id);
    const turnKey = liveTurnKey(turnId);
    const journal = await openTurnJournal(deps.store, deps.commit, session.id, turnKey);
    const base = { sessionId: session.id, turnId };
    const ephemeral = (type: string, data: Record<string, unknown>) =>
      deps.feed.ephemeral(session.owner, { ...base, at: iso(deps.now()), type, data });
    const deadline = deadlineSignal(controller.signal, deps.agentTimeoutMs);
    const result = await deps.agent
      .run({
        sessionId: session.id,
        messages: conversation(session, history),
        maxRounds: deps.maxRounds,
        signal: deadline.signal,
        journal: journal.entries,
        record: journal.record,
        tools: deps.tools(session.owner, session.id, turnKey),
        onDelta: (delta) => ephemeral('turn.delta', { delta }),
        onStep: (round) => ephemeral('turn.step', { round }),
        onTool: (tool) => ephemeral('turn.tool', { ...tool }),
      })
      .finally(deadline.clear);
    if (result.content.trim() === '' && result.toolEvents.length === 0) {
      throw new AgentError('agent_empty', 'the agent replied with neither text nor tool events');
    }
    return result;
  }

  /**
   * The wait before the next attempt, or null when there is none: the error
   * is not the agent's, the attempts are spent, the lease ran out, or the
   * lease would end before another attempt could (the turn holds the lock
   * all along, so that nothing comes between the message and its answer).
   */
  function retryIn(error: unknown): number | null {
    const { maxAttempts, baseMs, maxMs, leaseMs } = deps.retry;
    if (!(error instanceof AgentError) || controller.signal.aborted) return null;
    if (attempt >= maxAttempts) return null;
    const delay = retryDelayMs(attempt, baseMs, maxMs, deps.random(), error.retryAfterMs ?? 0);
    if (deps.now() + delay + deps.agentTimeoutMs > grantedAt + leaseMs) return null;
    return delay;
  }

  function pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        controller.signal.removeEventListener('abort', done);
        resolve();
      }
      controller.signal.addEventListener('abort', done, { once: true });
    });
  }

  function reason(error: unknown): string {
    if (controller.signal.reason === 'revoked') return 'it took longer than the session lease';
    return error instanceof Error ? error.message : String(error);
  }

  function notice(attempts: number, error: string): MessageRow {
    return {
      id: deps.ids.message(),
      sessionId: session.id,
      owner: session.owner,
      role: 'system',
      content: turnFailedText(attempts, error),
      metadata: { kind: 'turnFailed', turnId, attempts, error },
      createdAt: iso(deps.now()),
    };
  }
}

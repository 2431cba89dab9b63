import type { Agent, AgentTools } from './agents/agent.js';
import { iso } from './clock.js';
import { deadlineSignal } from './deadline.js';
import type { Feed } from './feed.js';
import { conversation } from './follow-up.js';
import type { Ids } from './ids.js';
import type { SessionLocks } from './session-locks.js';
import type { Batch, MessageRow, SessionRow, Store } from './store/store.js';
import { liveTurnKey, openTurnJournal } from './turn-journal.js';
import { messageView } from './views.js';

export interface LiveTurnDeps {
  store: Store;
  agent: Agent;
  feed: Feed;
  ids: Ids;
  locks: SessionLocks;
  now(): number;
  agentTimeoutMs: number;
  maxRounds: number;
  commit(sessionId: string, build: () => Batch | null): Promise<unknown>;
  tools(owner: string, sessionId: string, turnKey: string): AgentTools;
  /** Registers the turn's run so that shutdown can wait for it or abort it. */
  track(turnId: string, sessionId: string, run: { done: Promise<void>; abort: () => void }): void;
  onError(error: unknown): void;
}

export interface LiveTurn {
  /** Whether the turn has the session lock (granted, not yet released). */
  holdsLock(): boolean;
}

/**
 * A live turn: the user's message is queued for storing (`stored` settles
 * when it is); the agent answers once the session's lock is granted and the
 * message is stored, and the lock is released on every path (answer, agent
 * error, abort, lease expiry, deleted session, message not stored).
 *
 * A message that had to wait for the lock is stored queued (SPEC §3a
 * `enqueue`): it enters the history, after whatever was stored while it
 * waited (a follow-up's continuation), in the write that starts the turn, so
 * the stored order is the order the model saw. `userMessage.row` is the row
 * as the caller stores it; a turn run again by a new owner reads it from the
 * store and enters it only if it is still queued.
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
  const ended = command === undefined ? {} : { commands: [{ id: command, done: true }] };
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
  const finish = (ok: boolean, error?: string) =>
    deps.commit(session.id, () => {
      // A turn that failed before it started still puts its message in the history.
      const entered = enter();
      return {
        ...entered,
        events: [...(entered.events ?? []), event('turn.finished', ok ? { ok } : { ok, error })],
        ...ended,
      };
    });

  deps.locks.acquire(session.id, 'live', turnId, {
    granted: () => {
      holding = true;
      const done = run().finally(() => {
        holding = false;
        deps.locks.release(session.id, turnId, controller.signal.aborted ? 'aborted' : 'done');
      });
      deps.track(turnId, session.id, { done, abort: () => controller.abort() });
    },
    revoked: () => controller.abort(),
    gone: () => {
      controller.abort();
      // No turn without its message: the caller was told the write failed.
      stored.then(() => finish(false, 'the session was deleted')).catch(deps.onError);
    },
  });
  // The message could not be stored: the caller is told, and the turn leaves the queue.
  stored.catch(() => deps.locks.release(session.id, turnId, 'aborted'));
  return { holdsLock: () => holding };

  async function run(): Promise<void> {
    try {
      await stored;
    } catch {
      return;
    }
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
      const history = await deps.store.listMessages(session.id);
      // A turn run again (its owner died) goes on from the steps stored before.
      const turnKey = liveTurnKey(turnId);
      const journal = await openTurnJournal(deps.store, deps.commit, session.id, turnKey);
      const base = { sessionId: session.id, turnId };
      const at = () => iso(deps.now());
      const deadline = deadlineSignal(controller.signal, deps.agentTimeoutMs);
      const signal = deadline.signal;
      const running = deps.agent.run({
        sessionId: session.id,
        messages: conversation(session, history),
        maxRounds: deps.maxRounds,
        signal,
        journal: journal.entries,
        record: journal.record,
        tools: deps.tools(session.owner, session.id, turnKey),
        onDelta: (delta) =>
          deps.feed.ephemeral(session.owner, {
            ...base,
            at: at(),
            type: 'turn.delta',
            data: { delta },
          }),
        onStep: (round) =>
          deps.feed.ephemeral(session.owner, {
            ...base,
            at: at(),
            type: 'turn.step',
            data: { round },
          }),
        onTool: (tool) =>
          deps.feed.ephemeral(session.owner, {
            ...base,
            at: at(),
            type: 'turn.tool',
            data: { ...tool },
          }),
      });
      const result = await running.finally(deadline.clear);
      if (result.content.trim() === '' && result.toolEvents.length === 0) {
        throw new Error('the agent replied with neither text nor tool events');
      }
      const message: MessageRow = {
        id: deps.ids.message(),
        sessionId: session.id,
        owner: session.owner,
        role: 'assistant',
        content: result.content,
        metadata: { turnId, toolEvents: result.toolEvents, model: result.model },
        createdAt: iso(deps.now()),
      };
      await deps.commit(session.id, () => ({
        messages: [message],
        events: [
          event('message.created', { message: messageView(message) }),
          event('turn.finished', { ok: true }),
        ],
        ...ended,
      }));
    } catch (error) {
      await finish(false, error instanceof Error ? error.message : String(error)).catch(
        deps.onError,
      );
    }
  }
}

/**
 * A user message on the process that owns its session: stored, and its live
 * turn queued. A forwarded message is answered in the message's transaction,
 * and its command stays open until the turn ends it: run again (its owner
 * died first), the command answers with the message as stored and runs the
 * turn, not the message.
 */
import { iso } from './clock.js';
import { BatonError } from './errors.js';
import type { Command, StoredCommand } from './commands.js';
import { startLiveTurn, type LiveTurn, type LiveTurnDeps } from './live-turn.js';
import type { OwnedSessions } from './owned-sessions.js';
import type { SessionWriter } from './session-writer.js';
import { FencedError, type MessageRow, type SessionRow, type Store } from './store/store.js';
import { messageView, type MessageView } from './views.js';

type SendMessage = Extract<Command, { kind: 'sendMessage' }>;

export interface SendMessageDeps {
  store: Store;
  writer: SessionWriter;
  live: LiveTurnDeps;
  owned: OwnedSessions;
  now(): number;
}

/** What `POST …/messages` answers. */
export interface SentMessage {
  turnId: string;
  message: MessageView;
}

export async function sendMessageHere(
  deps: SendMessageDeps,
  session: SessionRow,
  command: SendMessage,
  from?: StoredCommand,
): Promise<unknown> {
  const { owner, turnId } = command;
  const sessionId = session.id;
  if (from?.result?.ok) {
    deps.owned.holdOpen(sessionId, from.id);
    startLiveTurn(
      deps.live,
      session,
      turnId,
      { id: command.messageId, row: null },
      Promise.resolve(),
      from.id,
    );
    return from.result.value;
  }
  if (command.onBusy === 'reject') {
    // Decided here, on the session's owner, where the lock lives; nothing is stored.
    const lock = deps.live.locks.view(sessionId);
    if (lock.lock === 'busy' || lock.queue.length > 0) {
      const holder = lock.holder ? ` (${lock.holder.kind} ${lock.holder.id})` : '';
      throw new BatonError('session_busy', `session ${sessionId} is busy${holder}`);
    }
  }
  const message: MessageRow = {
    id: command.messageId,
    sessionId,
    owner,
    role: 'user',
    content: command.content,
    metadata: { turnId },
    createdAt: iso(deps.now()),
  };
  const answer: SentMessage = { turnId, message: messageView(message) };
  let turn: LiveTurn | undefined;
  const stored = deps.writer.commit(sessionId, () => {
    // A turn that holds the lock when its message is written starts next:
    // nothing can come between, so the message goes straight into the
    // history. Otherwise it waits queued and enters when the turn starts
    // (live-turn.ts): written twice, but only when the session was busy.
    if (!turn?.holdsLock()) message.queued = true;
    answer.message = messageView(message);
    const type = message.queued ? 'message.queued' : 'message.created';
    return {
      messages: [message],
      // Open until the turn's answer or notice: a restart runs it again.
      openTurns: [{ turnId, sessionId, owner, messageId: message.id }],
      events: [deps.writer.event(owner, type, { message: answer.message }, sessionId, { turnId })],
      ...(from
        ? { commands: [{ id: from.id, result: { ok: true, value: answer }, done: false }] }
        : {}),
    };
  });
  if (from) deps.owned.holdOpen(sessionId, from.id);
  turn = startLiveTurn(
    deps.live,
    session,
    turnId,
    { id: message.id, row: message },
    stored,
    from?.id,
  );
  try {
    await stored;
  } catch (error) {
    if (!from) throw error;
    deps.owned.letGo(sessionId, from.id);
    return sentBefore(deps, session, command, error);
  }
  return answer;
}

/**
 * A forwarded message whose store failed: if the message is stored already
 * (by an owner of an older build, which stored no result and died), the
 * command answers with it and its turn runs, unless the turn answered it.
 */
async function sentBefore(
  deps: SendMessageDeps,
  session: SessionRow,
  command: SendMessage,
  error: unknown,
): Promise<SentMessage> {
  if (error instanceof FencedError) throw error;
  const history = await deps.store.listMessages(session.id).catch(() => []);
  const message = history.find((m) => m.id === command.messageId);
  if (!message) throw error;
  const answered = history.some(
    (m) => m.role !== 'user' && m.metadata['turnId'] === command.turnId,
  );
  if (!answered) {
    startLiveTurn(
      deps.live,
      session,
      command.turnId,
      { id: message.id, row: null },
      Promise.resolve(),
    );
  }
  return { turnId: command.turnId, message: messageView(message) };
}

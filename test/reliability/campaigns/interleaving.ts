/**
 * Whether a follow-up was ever written into a live turn, judged from the
 * stored messages and the session's feed events.
 *
 * A follow-up message stored between a user message and that turn's answer
 * is one of two things. Either the follow-up already held the session's lock
 * when the user's message arrived (the message is stored at once, SPEC §5,
 * and the live turn waits for the lock): the turn had not started, nothing
 * was interleaved, and it is counted as `arrivedDuringFollowUp`. Or the
 * follow-up took the lock after the user's message, ahead of the waiting
 * live turn, or wrote during the turn (between `turn.started` and
 * `turn.finished`): that is an interleaving, and must never happen.
 */

export interface OrderedMessage {
  id: string;
  sessionId: string;
  role: string;
  meta: Record<string, unknown>;
}

export interface SessionEvent {
  seq: number;
  sessionId?: string | null | undefined;
  type: string;
  turnId?: string | null | undefined;
  data: Record<string, unknown>;
}

export interface InterleavingCounts {
  /** `user < follow-up < answer` message ids of each interleaving. */
  interleavings: string[];
  /** Follow-ups stored between a user message and its answer that held the lock before the message came. */
  arrivedDuringFollowUp: number;
  /** User messages with no answer (their live turn was cut by a kill). */
  turnsCut: number;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

/** The job ids a message answers or reports on (`bgJobIds` when coalesced, else `bgJobId`). */
export function answeredJobs(metadata: Record<string, unknown>): string[] {
  const many = metadata['bgJobIds'];
  if (Array.isArray(many)) return many.filter((id): id is string => typeof id === 'string');
  const one = metadata['bgJobId'];
  return typeof one === 'string' ? [one] : [];
}

interface SessionView {
  messages: OrderedMessage[];
  messageSeq: Map<string, number>;
  /** Lock events in seq order: the holder's id after each. */
  locks: { seq: number; holder: string | null }[];
  turns: Map<string, { started: number; finished: number }>;
}

function views(messages: OrderedMessage[], events: SessionEvent[]): Map<string, SessionView> {
  const byId = new Map<string, SessionView>();
  const view = (sessionId: string): SessionView => {
    let v = byId.get(sessionId);
    if (!v) {
      v = { messages: [], messageSeq: new Map(), locks: [], turns: new Map() };
      byId.set(sessionId, v);
    }
    return v;
  };
  for (const m of messages) view(m.sessionId).messages.push(m);
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    if (e.sessionId === null || e.sessionId === undefined) continue;
    const v = view(e.sessionId);
    if (e.type === 'message.created') {
      const id = record(e.data['message'])['id'];
      if (typeof id === 'string') v.messageSeq.set(id, e.seq);
    } else if (e.type === 'session.lock') {
      const holder = record(e.data['holder'])['id'];
      v.locks.push({ seq: e.seq, holder: typeof holder === 'string' ? holder : null });
    } else if (
      typeof e.turnId === 'string' &&
      (e.type === 'turn.started' || e.type === 'turn.finished')
    ) {
      const turn = v.turns.get(e.turnId) ?? { started: Infinity, finished: Infinity };
      if (e.type === 'turn.started') turn.started = Math.min(turn.started, e.seq);
      else turn.finished = Math.min(turn.finished, e.seq);
      v.turns.set(e.turnId, turn);
    }
  }
  return byId;
}

/** Seq of the lock event that made `holder` the holder it still was at `before`; null if it was not. */
function grantedAt(v: SessionView, holder: string, before: number): number | null {
  let granted: number | null = null;
  for (const lock of v.locks) {
    if (lock.seq >= before) break;
    if (lock.holder !== holder) granted = null;
    else granted ??= lock.seq;
  }
  return granted;
}

export function checkInterleaving(
  messages: OrderedMessage[],
  events: SessionEvent[],
): InterleavingCounts {
  const out: InterleavingCounts = { interleavings: [], arrivedDuringFollowUp: 0, turnsCut: 0 };
  for (const v of views(messages, events).values()) {
    const list = v.messages;
    const followUps = list.filter((m) => answeredJobs(m.meta).length > 0);
    const flagged = new Set<string>();
    list.forEach((user, i) => {
      if (user.role !== 'user') return;
      const turnId = user.meta['turnId'];
      const answer = list.findIndex(
        (a, k) => k > i && a.role === 'assistant' && a.meta['turnId'] === turnId,
      );
      if (answer === -1) {
        // A notice answers a message too: the turn ended, it was not cut.
        const noticed = list.some(
          (a, k) => k > i && a.meta['kind'] === 'turnFailed' && a.meta['turnId'] === turnId,
        );
        if (!noticed) out.turnsCut++;
        return;
      }
      const userSeq = v.messageSeq.get(user.id) ?? Infinity;
      for (const f of list.slice(i + 1, answer)) {
        const leader = answeredJobs(f.meta)[0];
        if (leader === undefined) continue;
        const granted = grantedAt(v, leader, v.messageSeq.get(f.id) ?? Infinity);
        if (granted !== null && granted < userSeq) {
          out.arrivedDuringFollowUp++;
        } else if (!flagged.has(f.id)) {
          flagged.add(f.id);
          out.interleavings.push(`${user.id} < ${f.id} < ${list[answer]?.id ?? '?'}`);
        }
      }
    });
    // And never written while a turn runs, whatever the message order says. A
    // turn a kill cut short has no `turn.finished`: it ended with the process.
    for (const [turnId, turn] of v.turns) {
      if (turn.finished === Infinity) continue;
      for (const f of followUps) {
        const seq = v.messageSeq.get(f.id) ?? -1;
        if (seq > turn.started && seq < turn.finished && !flagged.has(f.id)) {
          flagged.add(f.id);
          out.interleavings.push(`${f.id} inside turn ${turnId}`);
        }
      }
    }
  }
  return out;
}

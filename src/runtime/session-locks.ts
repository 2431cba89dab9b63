import { createActor, type Actor, type InspectionEvent } from 'xstate';
import {
  createSessionMachine,
  lockView,
  type HolderKind,
  type LockHolder,
  type LockView,
  type ReleaseReason,
  type SessionMachine,
} from '../machines/session.machine.js';
import type { Clock } from './clock.js';

/** What a lock requester is told. Exactly one of these ends its wait or its hold. */
export interface LockHandler {
  /** The lock is now yours; release it on every path. */
  granted(): void;
  /** You held the lock past the lease; it was given to the next waiter. */
  revoked(reason: ReleaseReason): void;
  /** The session was deleted while you waited or held the lock. */
  gone(): void;
}

export interface LockRecord {
  kind: HolderKind;
  id: string;
  event: 'granted' | 'released' | 'revoked' | 'gone';
  at: number;
}

export interface SessionLocksOptions {
  clock: Clock;
  leaseMs: number;
  /**
   * Stores a `session.lock` event for the session's new lock view. It must
   * queue the write synchronously (before returning) so that writes caused by
   * the lock's effects are stored after it.
   */
  persist: (sessionId: string, view: LockView) => Promise<void>;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** Called with every grant and release, for tests and metrics. */
  onRecord?: ((sessionId: string, record: LockRecord) => void) | undefined;
  onError?: (error: unknown) => void;
}

interface SessionEntry {
  actor: Actor<SessionMachine>;
  handlers: Map<string, LockHandler>;
  pending: (() => void)[];
  lastView: string;
}

/**
 * One session actor per session: the mutex that live turns and follow-ups
 * share. Holds nothing durable: after a restart nobody holds a lock, because
 * every holder died with the process.
 */
export class SessionLocks {
  private readonly sessions = new Map<string, SessionEntry>();
  /** Deleted sessions: their actors are gone, later requests hear "gone" at once. */
  private readonly deleted = new Set<string>();
  private readonly machine: SessionMachine;

  constructor(private readonly options: SessionLocksOptions) {
    const clock = options.clock;
    this.machine = createSessionMachine({ now: () => clock.now() }).provide({
      actions: {
        lockGranted: ({ context }, { holder }) =>
          this.defer(context.sessionId, holder.id, (h) => h.granted(), 'granted', holder),
        lockRevoked: ({ context }, { holder, reason }) =>
          this.defer(
            context.sessionId,
            holder.id,
            (h) => h.revoked(reason),
            'revoked',
            holder,
            true,
          ),
        sessionGone: ({ context }, { ids }) => {
          for (const id of ids) {
            this.defer(context.sessionId, id, (h) => h.gone(), 'gone', null, true);
          }
        },
      },
    });
  }

  /** Asks for the session's lock; a second request with the same id is ignored. */
  acquire(sessionId: string, kind: HolderKind, id: string, handler: LockHandler): void {
    if (this.deleted.has(sessionId)) {
      queueMicrotask(() => handler.gone());
      return;
    }
    const entry = this.entry(sessionId);
    if (!entry.handlers.has(id)) entry.handlers.set(id, handler);
    entry.actor.send({ type: 'ACQUIRE', kind, id });
  }

  /** Gives the lock back (holder) or leaves the queue (waiter). Unknown ids are ignored. */
  release(sessionId: string, id: string, reason: ReleaseReason): void {
    const entry = this.sessions.get(sessionId);
    if (!entry) return;
    const holder = entry.actor.getSnapshot().context.holder;
    if (holder?.id === id) this.record(sessionId, holder.kind, id, 'released');
    entry.actor.send({ type: 'RELEASE', id, reason });
    entry.handlers.delete(id);
  }

  /** Ends the session: every holder and waiter is told it is gone. */
  delete(sessionId: string): void {
    if (this.deleted.has(sessionId)) return;
    this.entry(sessionId).actor.send({ type: 'DELETE' });
  }

  view(sessionId: string): LockView {
    const entry = this.sessions.get(sessionId);
    if (this.deleted.has(sessionId)) return { lock: 'idle', holder: null, queue: [] };
    if (!entry) return { lock: 'idle', holder: null, queue: [] };
    const snapshot = entry.actor.getSnapshot();
    return lockView(snapshot.context, snapshot.status !== 'active');
  }

  holder(sessionId: string): LockHolder | null {
    return this.sessions.get(sessionId)?.actor.getSnapshot().context.holder ?? null;
  }

  /** Drops a session's actor without telling anyone (another process owns the session now). */
  forget(sessionId: string): void {
    const entry = this.sessions.get(sessionId);
    if (!entry) return;
    this.sessions.delete(sessionId);
    entry.actor.stop();
  }

  /** Stops every session actor (shutdown); nobody is told anything. */
  stop(): void {
    for (const entry of this.sessions.values()) entry.actor.stop();
    this.sessions.clear();
  }

  private entry(sessionId: string): SessionEntry {
    let entry = this.sessions.get(sessionId);
    if (entry) return entry;
    const actor = createActor(this.machine, {
      input: { sessionId, leaseMs: this.options.leaseMs },
      clock: {
        setTimeout: (fn, ms) => this.options.clock.setTimeout(fn, ms),
        clearTimeout: (handle) => this.options.clock.clearTimeout(handle),
      },
      ...(this.options.inspect ? { inspect: this.options.inspect } : {}),
    });
    const created: SessionEntry = {
      actor,
      handlers: new Map(),
      pending: [],
      lastView: JSON.stringify(lockView(actor.getSnapshot().context)),
    };
    entry = created;
    this.sessions.set(sessionId, created);
    actor.subscribe({
      next: (snapshot) => this.onSnapshot(sessionId, created, snapshot.status !== 'active'),
      error: (error) => this.options.onError?.(error),
    });
    actor.start();
    return created;
  }

  private defer(
    sessionId: string,
    id: string,
    effect: (handler: LockHandler) => void,
    event: LockRecord['event'],
    holder: LockHolder | null,
    forget = false,
  ): void {
    const entry = this.sessions.get(sessionId);
    if (!entry) return;
    const handler = entry.handlers.get(id);
    if (forget) entry.handlers.delete(id);
    if (holder) this.record(sessionId, holder.kind, id, event);
    else if (handler) this.record(sessionId, 'followUp', id, event);
    if (handler) entry.pending.push(() => effect(handler));
  }

  private record(sessionId: string, kind: HolderKind, id: string, event: LockRecord['event']) {
    this.options.onRecord?.(sessionId, { kind, id, event, at: this.options.clock.now() });
  }

  private onSnapshot(sessionId: string, entry: SessionEntry, deleted: boolean): void {
    const effects = entry.pending.splice(0);
    const view = lockView(entry.actor.getSnapshot().context, deleted);
    const key = JSON.stringify(view);
    const changed = key !== entry.lastView;
    entry.lastView = key;
    const run = () => {
      for (const effect of effects) {
        try {
          effect();
        } catch (error) {
          this.options.onError?.(error);
        }
      }
    };
    if (changed) {
      // Stored through the session's write queue, ahead of any write that the
      // effects below cause (the job's move to `continuing`), so the feed
      // shows the lock change first. The lock itself lives in memory only: a
      // restart drops every holder, so its effects need not wait for the write.
      this.options
        .persist(sessionId, view)
        .catch((error: unknown) => this.options.onError?.(error));
    }
    run();
    if (deleted) this.deleted.add(sessionId);
    // An idle session's actor holds nothing worth keeping: drop it so memory
    // follows the busy sessions, not all sessions ever seen.
    if (deleted || (view.lock === 'idle' && view.queue.length === 0)) {
      queueMicrotask(() => this.evict(sessionId, entry));
    }
  }

  private evict(sessionId: string, entry: SessionEntry): void {
    if (this.sessions.get(sessionId) !== entry) return;
    const context = entry.actor.getSnapshot().context;
    const deleted = this.deleted.has(sessionId);
    if (!deleted && (context.holder || context.queue.length > 0 || entry.pending.length > 0))
      return;
    this.sessions.delete(sessionId);
    entry.actor.stop();
  }

  /** Number of session actors in memory, for tests and metrics. */
  get size(): number {
    return this.sessions.size;
  }
}

import type { LockView } from '../machines/session.machine.js';
import { iso, type Clock } from './clock.js';
import type { Coordinator } from './coordinator.js';
import type { Feed } from './feed.js';
import type { FeedTail } from './feed-tail.js';
import { SerialQueue } from './serial-queue.js';
import {
  FencedError,
  type Batch,
  type NewEvent,
  type Store,
  type StoredEvent,
} from './store/store.js';

/** A write in a session's queue, and the lock event that rides in its batch. */
interface QueuedWrite {
  /** The session's newest lock view while the batch is unbuilt; it supersedes older ones. */
  lock: NewEvent | null;
  /** Settles when the write is stored (and its events fanned out), or failed. */
  done: Promise<void>;
}

/**
 * Every write of a session goes through here: one queue per session keeps
 * them in order, and their events reach the feed only once stored.
 */
export class SessionWriter {
  private readonly queue = new SerialQueue();
  private readonly owners = new Map<string, string>();
  /** Each session's newest queued write, while its batch is not built yet. */
  private readonly unbuilt = new Map<string, QueuedWrite>();

  constructor(
    private readonly store: Store,
    private readonly coordinator: Coordinator,
    private readonly feed: Feed,
    private readonly tail: FeedTail,
    private readonly clock: Clock,
  ) {}

  /** Remembers whose a session is, for the lock events written on its behalf. */
  knowOwner(sessionId: string, owner: string): void {
    this.owners.set(sessionId, owner);
  }

  event(
    owner: string,
    type: string,
    data: Record<string, unknown>,
    sessionId?: string,
    extra: { jobId?: string; turnId?: string } = {},
  ): NewEvent {
    return { owner, at: iso(this.clock.now()), type, sessionId: sessionId ?? null, ...extra, data };
  }

  /**
   * Runs a commit in the session's write queue, then fans its events out.
   * With a shared store the batch is fenced with this process's epoch for the
   * session, so a process that lost the session writes nothing more for it.
   */
  commit(
    sessionId: string,
    build: () => Batch | null | Promise<Batch | null>,
    fenced = true,
  ): Promise<void> {
    return this.enqueue(sessionId, build, fenced).done;
  }

  private enqueue(
    sessionId: string,
    build: () => Batch | null | Promise<Batch | null>,
    fenced: boolean,
  ): QueuedWrite {
    const write: QueuedWrite = { lock: null, done: Promise.resolve() };
    // Only fenced writes take a lock event: it is a fenced session.lock event.
    if (fenced) this.unbuilt.set(sessionId, write);
    const handed = this.queue.run(sessionId, async () => {
      // From here on the write is being built: later events queue on their own.
      if (this.unbuilt.get(sessionId) === write) this.unbuilt.delete(sessionId);
      const built = await build();
      const batch =
        write.lock === null ? built : { ...built, events: [...(built?.events ?? []), write.lock] };
      if (!batch) return null;
      if (this.coordinator.shared && fenced) {
        const epoch = this.coordinator.epoch(sessionId);
        if (epoch === undefined) throw new FencedError({ sessionId, epoch: -1 });
        batch.fence = { sessionId, epoch };
      }
      // Handed over without waiting for the session's previous batch to be
      // durable: the store applies batches in the order it receives them, so
      // the session's writes stay in order and can share one fsync.
      return { durable: this.store.commit(batch) };
    });
    write.done = handed.then(async (handle) => {
      if (!handle) return;
      this.published((await handle.durable).events);
    });
    return write;
  }

  /**
   * Stores a `session.lock` event in the session's write order, at once. A
   * lock changes as a direct result of a write just queued (a job that
   * finished asks for the lock, one that was answered gives it back), so the
   * event rides in that write's batch when the batch is not built yet: the
   * same place in the session's writes, one batch less. An event carries the
   * whole view, so a newer one replaces the one already riding: the batch
   * stores the view the lock has when it is built, not each step on the way.
   * If that write fails, the event goes with it; the next lock event carries
   * the whole view again.
   */
  lock(sessionId: string, view: LockView): Promise<void> {
    const owner = this.owners.get(sessionId);
    if (owner === undefined) {
      return this.commit(sessionId, async () => {
        const known = (await this.store.getSession(sessionId))?.owner;
        return known
          ? { events: [this.event(known, 'session.lock', { ...view }, sessionId)] }
          : null;
      });
    }
    const write = this.unbuilt.get(sessionId) ?? this.enqueue(sessionId, () => null, true);
    write.lock = this.event(owner, 'session.lock', { ...view }, sessionId);
    return write.done;
  }

  drain(): Promise<void> {
    return this.queue.drain();
  }

  /**
   * Resolves once every write queued so far is stored. The lock lives in
   * memory and runs one write ahead of the store (its `session.lock` event is
   * queued when it changes), so "the lock is idle" alone does not mean the
   * store is quiet. An empty commit after the queues drain is a barrier: the
   * store makes commits durable in the order it receives them.
   */
  async settled(): Promise<void> {
    await this.queue.drain();
    await this.store.commit({});
  }

  private published(events: StoredEvent[]): void {
    if (!this.coordinator.shared) {
      this.feed.publish(events);
      return;
    }
    // Every process, this one included, sends them from the store in seq order.
    const highest = new Map<string, number>();
    for (const event of events) highest.set(event.owner, event.seq);
    for (const [owner, seq] of highest) {
      this.tail.stored(owner, seq);
      this.coordinator.announce(owner, seq);
    }
  }
}

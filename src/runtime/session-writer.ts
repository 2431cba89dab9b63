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

/**
 * Every write of a session goes through here: one queue per session keeps
 * them in order, and their events reach the feed only once stored.
 */
export class SessionWriter {
  private readonly queue = new SerialQueue();
  private readonly owners = new Map<string, string>();

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
    const handed = this.queue.run(sessionId, async () => {
      const batch = await build();
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
    return handed.then(async (handle) => {
      if (!handle) return;
      this.published((await handle.durable).events);
    });
  }

  /** Queues the lock event at once (its place in the session's writes is what matters). */
  lock(sessionId: string, view: LockView): Promise<void> {
    return this.commit(sessionId, async () => {
      const owner = this.owners.get(sessionId) ?? (await this.store.getSession(sessionId))?.owner;
      return owner ? { events: [this.event(owner, 'session.lock', { ...view }, sessionId)] } : null;
    });
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

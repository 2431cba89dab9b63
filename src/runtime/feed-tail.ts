import type { Feed } from './feed.js';
import { SerialQueue } from './serial-queue.js';
import type { Store } from './store/store.js';

/** Events read from the store per query. */
const PAGE = 500;

/**
 * When several processes share the store, each process's feed follows the
 * store: told that events of an owner up to `seq` are stored (by whichever
 * process), it reads the ones it has not sent yet and fans them out, in seq
 * order, once each. A notice that comes late or twice changes nothing.
 *
 * A notice never says where the unsent events begin: a NOTIFY carries only
 * the last seq of its commit, and the notices of two commits can arrive in
 * the other order. So the tail goes on from the last seq it sent for the
 * owner, and for an owner it has not sent anything of yet, from the owner's
 * head read at {@link FeedTail.start}, which runs before the process serves
 * its feed. Every event after that head is sent by the tail; every event up
 * to it was stored before any client of this process subscribed, so a
 * client's replay has it, and a client without `since` asked only for what
 * comes after it connected.
 */
export class FeedTail {
  /** Per owner, the highest seq fanned out, or its head at start until then. */
  private readonly sent = new Map<string, number>();
  /** Per owner, the highest seq a notice said is stored and that is not sent yet. */
  private readonly told = new Map<string, number>();
  private readonly queue = new SerialQueue();
  private starting: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly feed: Feed,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Reads where every owner's events stand now; call it before the feed has clients. */
  start(): Promise<void> {
    this.starting ??= this.store.lastSeqs().then(
      (heads) => {
        for (const [owner, seq] of heads) if (!this.sent.has(owner)) this.sent.set(owner, seq);
      },
      (error: unknown) => {
        // Not kept: a later start (or notice) reads the heads again.
        this.starting = null;
        throw error;
      },
    );
    return this.starting;
  }

  stored(owner: string, seq: number): void {
    if (seq > (this.told.get(owner) ?? 0)) this.told.set(owner, seq);
    void this.queue.run(owner, () => this.catchUp(owner)).catch(this.onError);
  }

  /** Resolves once every notice received so far is handled. */
  drain(): Promise<void> {
    return this.queue.drain();
  }

  /**
   * Sends the owner's events up to the highest seq told so far. Notices that
   * queued up meanwhile find nothing left to do, so a burst of them costs
   * one read (a page per 500 events), not one per notice.
   */
  private async catchUp(owner: string): Promise<void> {
    // Started by recover(), before any notice and before the feed is served;
    // a write made before recover() starts it here.
    await this.start();
    const target = this.told.get(owner);
    if (target === undefined) return;
    // An owner missing from the heads at start had no event then: all of its events are new.
    let next = this.sent.get(owner) ?? 0;
    while (next < target) {
      const events = await this.store.readEvents(owner, next, Math.min(PAGE, target - next));
      // Only a notice of more than the store holds gets here: stop rather than spin.
      if (events.length === 0) break;
      this.feed.publish(events);
      next = events[events.length - 1]!.seq;
      this.sent.set(owner, next);
    }
    // Kept only while something told is unsent, so the map does not grow with every owner.
    if ((this.told.get(owner) ?? 0) <= next) this.told.delete(owner);
  }
}

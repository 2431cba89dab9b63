import type { Feed } from './feed.js';
import { SerialQueue } from './serial-queue.js';
import type { Store } from './store/store.js';

/**
 * When several processes share the store, each process's feed follows the
 * store: told that events of an owner up to `seq` are stored (by whichever
 * process), it reads the ones it has not sent yet and fans them out, in seq
 * order, once each. A notice that comes late or twice changes nothing.
 */
export class FeedTail {
  private readonly last = new Map<string, number>();
  private readonly queue = new SerialQueue();

  constructor(
    private readonly store: Store,
    private readonly feed: Feed,
    private readonly onError: (error: unknown) => void,
  ) {}

  stored(owner: string, seq: number): void {
    void this.queue
      .run(owner, async () => {
        // The first notice of an owner starts the tail there: clients replay
        // what came before from the store themselves (SPEC §6 `since`).
        const from = this.last.get(owner) ?? seq - 1;
        if (seq <= from) return;
        let next = from;
        while (next < seq) {
          const events = await this.store.readEvents(owner, next, Math.min(500, seq - next));
          if (events.length === 0) break;
          this.feed.publish(events);
          next = events[events.length - 1]!.seq;
        }
        this.last.set(owner, Math.max(next, from));
      })
      .catch(this.onError);
  }
}

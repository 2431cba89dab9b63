import type { StoredEvent } from './store/store.js';

/** A frame of the event feed (SPEC §6). Durable frames carry `seq`; ephemeral ones do not. */
export interface FeedFrame {
  seq?: number;
  at: string;
  type: string;
  sessionId?: string;
  jobId?: string;
  turnId?: string;
  data: Record<string, unknown>;
}

export type FeedListener = (frame: FeedFrame) => void;

/** Types that are sent live only and never stored. */
export const EPHEMERAL_TYPES = ['turn.delta', 'turn.step', 'turn.tool', 'job.output'] as const;

export function toFrame(event: StoredEvent): FeedFrame {
  const frame: FeedFrame = { seq: event.seq, at: event.at, type: event.type, data: event.data };
  if (event.sessionId) frame.sessionId = event.sessionId;
  if (event.jobId) frame.jobId = event.jobId;
  if (event.turnId) frame.turnId = event.turnId;
  return frame;
}

/**
 * Live fan-out of feed frames to the listeners of each owner. Durable events
 * reach it only after their commit, so a listener never sees an event that a
 * replay from the store could not give again.
 */
export class Feed {
  private readonly listeners = new Map<string, Set<FeedListener>>();
  private readonly everyOwner = new Set<(owner: string, frame: FeedFrame) => void>();

  subscribe(owner: string, listener: FeedListener): () => void {
    let set = this.listeners.get(owner);
    if (!set) {
      set = new Set();
      this.listeners.set(owner, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(owner);
      current?.delete(listener);
      if (current && current.size === 0) this.listeners.delete(owner);
    };
  }

  /** Sees every owner's frames (metrics); never exposed to a client. */
  subscribeAll(listener: (owner: string, frame: FeedFrame) => void): () => void {
    this.everyOwner.add(listener);
    return () => this.everyOwner.delete(listener);
  }

  /** Fans out committed events, in commit order. */
  publish(events: readonly StoredEvent[]): void {
    for (const event of events) this.emit(event.owner, toFrame(event));
  }

  /** Passes this process's not-stored frames on to other processes (set when the store is shared). */
  relay: ((owner: string, frame: Omit<FeedFrame, 'seq'>) => void) | null = null;

  /** Fans out a frame that is not stored (streamed deltas, steps, tool events). */
  ephemeral(owner: string, frame: Omit<FeedFrame, 'seq'>): void {
    this.emit(owner, frame);
    this.relay?.(owner, frame);
  }

  /** A not-stored frame made by another process: fanned out here, not passed on again. */
  fromPeer(owner: string, frame: Omit<FeedFrame, 'seq'>): void {
    this.emit(owner, frame);
  }

  /** Number of live listeners, for metrics. */
  size(): number {
    let total = 0;
    for (const set of this.listeners.values()) total += set.size;
    return total;
  }

  private emit(owner: string, frame: FeedFrame): void {
    for (const listener of this.everyOwner) {
      try {
        listener(owner, frame);
      } catch {
        // Same as below: one broken listener must not stop the others.
      }
    }
    const set = this.listeners.get(owner);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(frame);
      } catch {
        // A broken listener (a socket that died mid-send) must not stop the others.
      }
    }
  }
}

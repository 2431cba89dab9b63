/**
 * How the processes that share one store divide the work. A session's actors
 * (its mutex and its jobs) live in exactly one process, its owner; the others
 * send it what they are asked to do for that session. With the embedded store
 * there is one process, and it owns everything ({@link LocalCoordinator}).
 */

/** What the coordinator tells the runtime. */
export interface CoordinatorEvents {
  /** This process now owns the session (it was free, or its owner died): rebuild it. */
  claimed(sessionId: string): Promise<void>;
  /** This process lost the session (its lease ended): drop its actors at once. */
  lost(sessionId: string): void;
  /** Commands for a session this process owns are waiting. */
  commands(sessionId: string): void;
  /** Events up to `seq` of `owner` are stored (by any process). */
  stored(owner: string, seq: number): void;
  /** A frame that is not stored (a streamed delta), made by another process. */
  ephemeral(owner: string, frame: unknown): void;
}

export interface Coordinator {
  /** Identifies this process in the store (job hosts, session owners). */
  readonly hostId: string;
  /** True when several processes may share the store. */
  readonly shared: boolean;
  start(events: CoordinatorEvents): Promise<void>;
  /**
   * Makes this process the session's owner if nobody owns it; returns the
   * fencing epoch every write of the session must carry, or null when another
   * live process owns it.
   */
  claim(sessionId: string): Promise<number | null>;
  /** The fencing epoch of a session this process owns, else undefined. */
  epoch(sessionId: string): number | undefined;
  /** Tells other processes that events of `owner` up to `seq` are stored. */
  announce(owner: string, seq: number): void;
  /** Passes a not-stored frame to the other processes' clients. */
  broadcast(owner: string, frame: unknown): void;
  /** Wakes the owner of a session: commands are waiting for it. */
  wake(sessionId: string): Promise<void>;
  /** Gives every owned session back so that others take them at once. */
  close(): Promise<void>;
}

/** The single-process coordinator: this process owns every session, always. */
export class LocalCoordinator implements Coordinator {
  readonly hostId: string;
  readonly shared = false;

  constructor(hostId = 'local') {
    this.hostId = hostId;
  }

  async start(): Promise<void> {}

  async claim(): Promise<number> {
    return 0;
  }

  epoch(): number {
    return 0;
  }

  announce(): void {}

  broadcast(): void {}

  async wake(): Promise<void> {}

  async close(): Promise<void> {}
}

import type { Command, CommandResult, StoredCommand } from './commands.js';

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
  /** Stores a command for the session's owner, wakes it, and waits for the result. */
  forward(sessionId: string, command: Command): Promise<CommandResult>;
  /**
   * Commands not done yet for a session this process owns, oldest first,
   * with the result their effect recorded when an earlier owner ran them.
   */
  pendingCommands(sessionId: string): Promise<StoredCommand[]>;
  /**
   * Marks a command done and tells the process that sent it its result,
   * unless the transaction of the command's effect recorded one already:
   * that one is what its caller was answered, and it stays.
   */
  finishCommand(id: number, result: CommandResult): Promise<void>;
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

  // The only process owns every session, so nothing is ever forwarded.
  async forward(): Promise<CommandResult> {
    return { ok: false, code: 'internal', message: 'nothing to forward in a single process' };
  }

  async pendingCommands(): Promise<StoredCommand[]> {
    return [];
  }

  async finishCommand(): Promise<void> {}

  async close(): Promise<void> {}
}

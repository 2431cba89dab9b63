/**
 * The sessions this process owns when several processes share the store
 * (SPEC §8): each is rebuilt once (its unfinished jobs), then its forwarded
 * commands run, oldest first; a session lost to another process is dropped
 * here without a word.
 */
import { settle, type Command, type CommandResult, type StoredCommand } from './commands.js';
import type { Coordinator } from './coordinator.js';
import type { JobProcesses } from './job-processes.js';
import type { JobRegistry } from './job-registry.js';
import type { Logger } from './policy.js';
import { SerialQueue } from './serial-queue.js';
import type { SessionLocks } from './session-locks.js';
import type { Store } from './store/store.js';

export interface OwnedSessionsDeps {
  store: Store;
  coordinator: Coordinator;
  jobs: JobRegistry;
  processes: JobProcesses;
  locks: SessionLocks;
  logger: Logger;
  /** Runs a command on this, its owner (`from`: its stored form). */
  run(command: Command, from: StoredCommand): Promise<unknown>;
  /** Aborts the live turns of a session this process no longer owns. */
  abortTurns(sessionId: string): void;
  /**
   * Runs again the session's live turns that have neither answer nor
   * notice; `commandOf` names the forwarded command that sent a turn's
   * message, if it is still open (the turn's end closes it).
   */
  resumeTurns(sessionId: string, commandOf: (turnId: string) => number | undefined): Promise<void>;
}

export class OwnedSessions {
  private readonly commandQueue = new SerialQueue();
  /** Sessions this process owns, rebuilt (their jobs) and with their commands run once. */
  private readonly loaded = new Map<string, Promise<void>>();
  /** The rebuilding of each owned session's jobs, which its commands wait for. */
  private readonly jobsLoaded = new Map<string, Promise<void>>();
  /**
   * Forwarded messages whose live turn runs here, by session: their command
   * stays open until the turn ends it, and is not taken up again meanwhile.
   */
  private readonly open = new Map<string, Set<number>>();

  constructor(private readonly deps: OwnedSessionsDeps) {}

  get size(): number {
    return this.loaded.size;
  }

  /** A session this process has just made: nothing to rebuild. */
  created(sessionId: string): void {
    this.jobsLoaded.set(sessionId, Promise.resolve());
    this.loaded.set(sessionId, Promise.resolve());
  }

  /**
   * Rebuilds a session this process just came to own: its open live turns
   * first (they take the lock before any recovered follow-up, as a message
   * already in the history must be answered before anything else is
   * written), then its unfinished jobs, then its commands.
   */
  load(sessionId: string): Promise<void> {
    let loading = this.loaded.get(sessionId);
    if (!loading) {
      loading = this.resumeTurns(sessionId)
        .then(() => this.loadJobs(sessionId))
        .then(() => this.runCommands(sessionId));
      this.loaded.set(sessionId, loading);
      // A rebuild that failed (the store was down) is tried again by the next call.
      loading.catch(() => {
        if (this.loaded.get(sessionId) === loading) this.loaded.delete(sessionId);
      });
    }
    return loading;
  }

  /**
   * The session's open live turns, each with the forwarded command that sent
   * its message if that is still pending: held open here, so that the
   * command is ended by the turn's last write and not run again.
   */
  private async resumeTurns(sessionId: string): Promise<void> {
    if (this.deps.coordinator.epoch(sessionId) === undefined) return;
    const pending = await this.deps.coordinator.pendingCommands(sessionId);
    const byTurn = new Map<string, number>();
    for (const stored of pending) {
      // One stored without its result (an older build) is answered by runCommands.
      if (stored.command.kind === 'sendMessage' && stored.result?.ok) {
        byTurn.set(stored.command.turnId, stored.id);
      }
    }
    await this.deps.resumeTurns(sessionId, (turnId) => {
      const command = byTurn.get(turnId);
      if (command !== undefined) this.holdOpen(sessionId, command);
      return command;
    });
  }

  /** Another process owns the session now: drop its actors here without a word. */
  forget(sessionId: string): void {
    this.loaded.delete(sessionId);
    this.jobsLoaded.delete(sessionId);
    this.open.delete(sessionId);
    this.deps.jobs.forget(sessionId);
    this.deps.locks.forget(sessionId);
    this.deps.abortTurns(sessionId);
  }

  /** Keeps a forwarded message's command open while its live turn runs here. */
  holdOpen(sessionId: string, command: number): void {
    let open = this.open.get(sessionId);
    if (!open) this.open.set(sessionId, (open = new Set()));
    open.add(command);
  }

  /** The command is not held open any more (its message could not be stored). */
  letGo(sessionId: string, command: number): void {
    this.open.get(sessionId)?.delete(command);
  }

  /**
   * Runs the session's waiting commands, oldest first, once its jobs are
   * rebuilt (a command must find the job it names, never make a second one).
   * Only an owner finishes a command: one that lost the session meanwhile
   * leaves the rest to the new owner, whose store writes are the only ones
   * that count now.
   */
  runCommands(sessionId: string): Promise<void> {
    const { coordinator } = this.deps;
    return this.commandQueue.run(sessionId, async () => {
      // Lost before its turn came: rebuilding its jobs here would make actors that cannot write.
      if (coordinator.epoch(sessionId) === undefined) return;
      await this.loadJobs(sessionId);
      const pending = await coordinator.pendingCommands(sessionId);
      const open = this.open.get(sessionId);
      // An open command no longer pending was ended by its live turn.
      if (open) for (const id of open) if (!pending.some((p) => p.id === id)) open.delete(id);
      for (const stored of pending) {
        if (this.open.get(sessionId)?.has(stored.id)) continue;
        if (coordinator.epoch(sessionId) === undefined) return;
        const result = await this.resultOf(stored);
        if (coordinator.epoch(sessionId) === undefined) return;
        if (this.open.get(sessionId)?.has(stored.id)) continue;
        await coordinator.finishCommand(stored.id, result);
      }
    });
  }

  /** A result recorded with the command's effect stands; a message's turn runs again. */
  private resultOf(stored: StoredCommand): Promise<CommandResult> {
    if (stored.result && stored.command.kind !== 'sendMessage') {
      return Promise.resolve(stored.result);
    }
    return settle(
      () => this.deps.run(stored.command, stored),
      (error) => this.deps.logger.error({ err: error, command: stored.id }, 'command failed'),
    );
  }

  private loadJobs(sessionId: string): Promise<void> {
    let loading = this.jobsLoaded.get(sessionId);
    if (!loading) {
      loading = (async () => {
        for (const row of await this.deps.store.listJobs({ sessionId, unfinished: true })) {
          await this.deps.jobs.recover(row).catch((error: unknown) => {
            this.deps.logger.error({ err: error, jobId: row.id }, 'could not recover job');
          });
        }
        this.deps.processes.pump();
      })();
      this.jobsLoaded.set(sessionId, loading);
      loading.catch(() => {
        if (this.jobsLoaded.get(sessionId) === loading) this.jobsLoaded.delete(sessionId);
      });
    }
    return loading;
  }
}

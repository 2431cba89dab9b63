import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import {
  eventColumns,
  ignoreConnectionError,
  isRetryable,
  isUnavailable,
  jobParams,
  toEvent,
  toStoreError,
} from './postgres-sql.js';
import type { EventRecord, Named, Statements } from './postgres-sql.js';
import { DuplicateFollowUpError, FencedError, StoreConflictError } from './store.js';
import type { Batch, CommitResult, JobWrite, MessageRow, NewEvent, StoredEvent } from './store.js';

/** Most batches one transaction takes, so that one transaction stays short. */
const MAX_GROUP = 100;
/** Runs of one group when the server aborts it for a deadlock or serialization failure. */
const MAX_ATTEMPTS = 5;

type GroupResult = { ok: true; value: CommitResult } | { ok: false; error: unknown };

interface PendingCommit {
  batch: Batch;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

/**
 * The commit path of {@link PostgresStore}: a single writer chain, so that
 * batches are applied in call order even when the caller does not wait.
 * Batches handed in while a transaction runs share the next one (group
 * commit). As in the SQLite store, a group runs as one plain transaction,
 * and again with a savepoint per batch only when one of its batches fails.
 */
export class GroupCommitWriter {
  private readonly pending: PendingCommit[] = [];
  private draining: Promise<void> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly sql: Statements,
  ) {}

  /** Queues the batch behind every batch handed in before it. */
  commit(batch: Batch): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /** Resolves once every batch handed in so far is written or has failed. */
  async settled(): Promise<void> {
    await this.draining;
  }

  /** The writer chain: one group transaction at a time, in call order. */
  private async drain(): Promise<void> {
    // Commits handed in during this turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      await this.writeGroup(this.pending.splice(0, MAX_GROUP));
    }
    this.draining = null;
  }

  /** Writes a group and settles every promise in it; never throws. */
  private async writeGroup(group: PendingCommit[]): Promise<void> {
    const batches = group.map((p) => p.batch);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const results = await this.transaction(batches);
        group.forEach((p, i) => {
          const result = results[i];
          if (result?.ok) p.resolve(result.value);
          else p.reject(toStoreError(result ? result.error : new Error('batch was not written')));
        });
        return;
      } catch (error) {
        // The server aborted the whole transaction to break a deadlock with
        // another process: nothing was written, so the same group runs again.
        if (attempt < MAX_ATTEMPTS && isRetryable(error)) continue;
        const mapped = toStoreError(error);
        for (const p of group) p.reject(mapped);
        return;
      }
    }
  }

  /** Runs the group in one transaction on one connection; ROLLBACK on any throw. */
  private async transaction(batches: Batch[]): Promise<GroupResult[]> {
    const client = await this.pool.connect();
    client.on('error', ignoreConnectionError);
    let broken: Error | undefined;
    try {
      return await this.writeGroupIn(client, batches);
    } catch (error) {
      broken = await client.query('ROLLBACK').then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
      );
      throw error;
    } finally {
      client.off('error', ignoreConnectionError);
      // A connection that cannot even roll back is destroyed, not pooled.
      client.release(broken);
    }
  }

  private async writeGroupIn(client: PoolClient, batches: Batch[]): Promise<GroupResult[]> {
    await client.query('BEGIN');
    if (batches.length === 1) {
      // Alone, a failing batch fails the transaction.
      const value = await this.writeBatch(client, batches[0] as Batch);
      await this.commitTransaction(client);
      return [{ ok: true, value }];
    }
    try {
      const results = await this.writeWhole(client, batches);
      await this.commitTransaction(client);
      return results;
    } catch (error) {
      if (isUnavailable(error) || isRetryable(error)) throw error;
      // A batch failed and nothing of the group was written: the group runs
      // again, each batch in its savepoint, so only that batch is refused.
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      const results = await this.writeIsolated(client, batches);
      await this.commitTransaction(client);
      return results;
    }
  }

  /**
   * The common case, every batch of the group goes through: no savepoints
   * (two round trips a batch), and the group's events take their numbers
   * and are inserted with one statement each. Any failure fails it all.
   */
  private async writeWhole(client: PoolClient, batches: Batch[]): Promise<GroupResult[]> {
    const versions: Record<string, number>[] = [];
    for (const batch of batches) versions.push(await this.writeRows(client, batch));
    const events = await this.appendEvents(
      client,
      batches.flatMap((b) => b.events ?? []),
    );
    let next = 0;
    return batches.map((batch, i): GroupResult => {
      const count = batch.events?.length ?? 0;
      next += count;
      return {
        ok: true,
        value: { events: events.slice(next - count, next), jobVersions: versions[i] ?? {} },
      };
    });
  }

  private async writeIsolated(client: PoolClient, batches: Batch[]): Promise<GroupResult[]> {
    const results: GroupResult[] = [];
    for (const batch of batches) {
      await client.query('SAVEPOINT batch');
      try {
        const value = await this.writeBatch(client, batch);
        await client.query('RELEASE SAVEPOINT batch');
        results.push({ ok: true, value });
      } catch (error) {
        // The failing batch rolls back to its savepoint and the others still
        // commit, unless the whole transaction is lost (connection, disk,
        // deadlock): then all fail.
        if (isUnavailable(error) || isRetryable(error)) throw error;
        await client.query('ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch');
        results.push({ ok: false, error });
      }
    }
    return results;
  }

  private async commitTransaction(client: PoolClient): Promise<void> {
    const done = await client.query('COMMIT');
    // COMMIT of a transaction in the aborted state answers ROLLBACK, not an error.
    if (done.command !== 'COMMIT') throw new Error(`transaction ended with ${done.command}`);
  }

  /** The body of one batch; any throw rolls all of it back. */
  private async writeBatch(client: PoolClient, batch: Batch): Promise<CommitResult> {
    const jobVersions = await this.writeRows(client, batch);
    const events = await this.appendEvents(client, batch.events ?? []);
    return { events, jobVersions };
  }

  /** A batch's fence and rows, all but its events; returns the new job versions. */
  private async writeRows(client: PoolClient, batch: Batch): Promise<Record<string, number>> {
    if (batch.fence) {
      // FOR SHARE: a claim (which raises the epoch) waits for this commit, or this one sees it.
      const { rows } = await this.run<{ owner_epoch: number }>(client, 'sessionEpoch', [
        batch.fence.sessionId,
      ]);
      const epoch = rows[0]?.owner_epoch;
      if (epoch !== undefined && Number(epoch) !== batch.fence.epoch) {
        throw new FencedError(batch.fence);
      }
    }
    for (const s of batch.sessions ?? []) {
      await this.run(client, 'insertSession', [
        s.id,
        s.owner,
        s.title,
        s.systemPrompt,
        s.createdAt,
      ]);
    }
    for (const deletion of batch.sessionDeletes ?? []) {
      await this.run(client, 'deleteSession', [deletion.at, deletion.id]);
    }

    const jobVersions: Record<string, number> = {};
    for (const write of batch.jobs ?? []) {
      jobVersions[write.row.id] = await this.writeJob(client, write);
    }
    for (const message of batch.messages ?? []) {
      await this.writeMessage(client, message);
    }
    for (const id of batch.enteredMessages ?? []) {
      await this.run(client, 'enterMessage', [id]);
    }
    for (const turn of batch.openTurns ?? []) {
      await this.run(client, 'openTurn', [turn.turnId, turn.sessionId, turn.owner, turn.messageId]);
    }
    for (const turnId of batch.closedTurns ?? []) {
      await this.run(client, 'closeTurn', [turnId]);
    }
    for (const step of batch.journal ?? []) {
      await this.run(client, 'insertJournal', [
        step.turnKey,
        step.step,
        step.sessionId,
        JSON.stringify(step.entry),
      ]);
    }
    for (const command of batch.commands ?? []) {
      const result = command.result === undefined ? null : JSON.stringify(command.result);
      await this.run(client, 'recordCommand', [command.id, result, command.done]);
    }
    return jobVersions;
  }

  private async writeJob(client: PoolClient, write: JobWrite): Promise<number> {
    const params = jobParams(write.row);
    if (write.expectedVersion === null) {
      // Labels are set once, at creation; an update leaves them as they are.
      const { rowCount } = await this.run(client, 'insertJob', [
        ...params,
        JSON.stringify(write.row.labels),
      ]);
      // The caller believed the job was new; someone else created it first.
      if (rowCount === 0) throw new StoreConflictError(write.row.id, null);
      return 1;
    }
    const { rows } = await this.run<{ version: number }>(client, 'updateJob', [
      ...params,
      write.expectedVersion,
    ]);
    const version = rows[0]?.version;
    if (version === undefined) throw new StoreConflictError(write.row.id, write.expectedVersion);
    return version;
  }

  private async writeMessage(client: PoolClient, m: MessageRow): Promise<void> {
    const metadata = JSON.stringify(m.metadata);
    await this.run(client, 'insertMessage', [
      m.id,
      m.sessionId,
      m.owner,
      m.role,
      m.content,
      metadata,
      m.createdAt,
      m.queued === true,
    ]);
    for (const [position, jobId] of (m.answersJobs ?? []).entries()) {
      const { rowCount } = await this.run(client, 'insertFollowUp', [jobId, m.id, position]);
      if (rowCount === 0) throw new DuplicateFollowUpError(jobId);
    }
  }

  /**
   * Takes each owner's seqs from `owner_seq` inside the transaction: the row
   * lock makes concurrent writers of an owner take turns, and a rollback
   * returns the numbers, so seq stays gap-free across processes.
   */
  private async appendEvents(client: PoolClient, events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const counts = new Map<string, number>();
    for (const e of events) counts.set(e.owner, (counts.get(e.owner) ?? 0) + 1);
    const { rows } = await this.run<{ owner: string; last_seq: number }>(client, 'bumpSeqs', [
      [...counts.keys()],
      [...counts.values()],
    ]);
    const next = new Map<string, number>();
    for (const r of rows) next.set(r.owner, r.last_seq - (counts.get(r.owner) ?? 0) + 1);

    const records = events.map((e): EventRecord => {
      const seq = next.get(e.owner);
      if (seq === undefined) throw new Error(`no seq allocated for owner ${e.owner}`);
      next.set(e.owner, seq + 1);
      return {
        owner: e.owner,
        seq,
        at: e.at,
        type: e.type,
        session_id: e.sessionId ?? null,
        job_id: e.jobId ?? null,
        turn_id: e.turnId ?? null,
        data: JSON.stringify(e.data),
      };
    });
    await this.run(client, 'insertEvents', eventColumns(records));
    // Parsed back from what was stored, so a live event and its replay are equal.
    return records.map(toEvent);
  }

  /** Runs a fixed statement as a prepared statement of the connection. */
  private run<R extends QueryResultRow>(
    client: PoolClient,
    name: Named,
    values: unknown[],
  ): Promise<QueryResult<R>> {
    return client.query<R>({ name, text: this.sql[name], values });
  }
}

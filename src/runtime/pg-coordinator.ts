import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Command, CommandResult, StoredCommand } from './commands.js';
import type { Coordinator, CoordinatorEvents } from './coordinator.js';
import type { Logger } from './policy.js';
import { notifyChannels, type NotifyChannels } from './store/notify-channels.js';

export interface PgCoordinatorOptions {
  connectionString: string;
  /** The store's schema: the coordinator's tables live beside the store's. */
  schema: string;
  hostId: string;
  /** How long a forwarded call waits for the session's owner. @defaultValue 15000 */
  forwardTimeoutMs?: number;
  /**
   * Period of the safety sweep that claims sessions whose owner died (their
   * lease, the owner's advisory lock, ends with its connection). Wake-ups do
   * not wait for it: they come by LISTEN/NOTIFY.
   * @defaultValue 1000
   */
  sweepMs?: number;
  logger: Logger;
}

/** NOTIFY payloads are capped at 8000 bytes by PostgreSQL. */
const MAX_PAYLOAD = 7900;
const FINAL = `('followedUp', 'failed', 'cancelled', 'skipped')`;

/**
 * Session ownership on PostgreSQL. A process owns a session while it holds
 * the session's advisory lock on its own dedicated connection: if the process
 * dies, PostgreSQL drops the connection and the lock with it, and the next
 * sweep (or a hand-over notice) gives the session to another process. Each
 * claim raises the session's `owner_epoch`; every write of the session carries
 * the epoch it was claimed with, so a process that lost a session can never
 * overwrite what the new owner wrote.
 */
export class PgCoordinator implements Coordinator {
  readonly hostId: string;
  readonly shared = true;
  private readonly owned = new Map<string, number>();
  private readonly claiming = new Map<string, Promise<number | null>>();
  private readonly waiting = new Map<number, (result: CommandResult) => void>();
  private client: pg.Client | null = null;
  /** The tail of the queries sent on each connection: one at a time, in call order. */
  private readonly tails = new WeakMap<pg.Client, Promise<unknown>>();
  /** NOTIFYs waiting to go, sent together behind the query that runs. */
  private outbox: { channel: string; payload: string }[] = [];
  private events: CoordinatorEvents | null = null;
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly schema: string;
  private readonly channels: NotifyChannels;

  constructor(private readonly options: PgCoordinatorOptions) {
    this.hostId = options.hostId;
    this.schema = `"${options.schema.replaceAll('"', '""')}"`;
    this.channels = notifyChannels(options.schema);
  }

  async start(events: CoordinatorEvents): Promise<void> {
    this.events = events;
    await this.connect();
    const every = this.options.sweepMs ?? 1000;
    this.sweep = setInterval(() => void this.sweepOnce(), every);
    this.sweep.unref();
    await this.sweepOnce();
  }

  epoch(sessionId: string): number | undefined {
    return this.owned.get(sessionId);
  }

  claim(sessionId: string): Promise<number | null> {
    const owned = this.owned.get(sessionId);
    if (owned !== undefined) return Promise.resolve(owned);
    let pending = this.claiming.get(sessionId);
    if (!pending) {
      pending = this.tryClaim(sessionId).finally(() => this.claiming.delete(sessionId));
      this.claiming.set(sessionId, pending);
    }
    return pending;
  }

  announce(owner: string, seq: number): void {
    this.notify(this.channels.events, `${seq} ${owner}`);
  }

  broadcast(owner: string, frame: unknown): void {
    const payload = JSON.stringify({ host: this.hostId, owner, frame });
    if (Buffer.byteLength(payload) <= MAX_PAYLOAD) this.notify(this.channels.ephemeral, payload);
  }

  async forward(sessionId: string, command: Command): Promise<CommandResult> {
    const stored = await this.query<{ id: string }>(
      `WITH c AS (INSERT INTO ${this.schema}.commands (session_id, command) VALUES ($1, $2)
                  RETURNING id)
       SELECT id, pg_notify($3, $1) FROM c`,
      [sessionId, JSON.stringify(command), this.channels.commands],
    );
    const id = Number(stored.rows[0]?.id);
    const timeoutMs = this.options.forwardTimeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    // Woken by NOTIFY; the row is read again now and then in case a notice was missed.
    while (Date.now() < deadline) {
      const result = await new Promise<CommandResult | null>((resolve) => {
        const timer = setTimeout(
          () => {
            this.waiting.delete(id);
            resolve(null);
          },
          Math.min(1000, Math.max(1, deadline - Date.now())),
        );
        this.waiting.set(id, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
      if (result) return result;
      const row = await this.query<{ result: CommandResult | null }>(
        `SELECT result FROM ${this.schema}.commands WHERE id = $1`,
        [id],
      );
      if (row.rows[0]?.result) return row.rows[0].result;
      // The owner may have died since: the session may be ours to take now.
      void this.claimAndTell(sessionId).catch(() => undefined);
    }
    return {
      ok: false,
      code: 'store_unavailable',
      message: await this.unanswered(sessionId, id, timeoutMs),
    };
  }

  /**
   * Why a forwarded command went unanswered, for the operator: which process
   * claimed the session, since when, and whether it still holds the claim.
   */
  private async unanswered(sessionId: string, id: number, waitedMs: number): Promise<string> {
    const head = `the owner of session ${sessionId} did not answer command ${id} within ${waitedMs / 1000} s`;
    const [high, low] = lockKeys(this.options.schema, sessionId);
    try {
      const { rows } = await this.query<{
        host: string | null;
        since: string | null;
        held: number | null;
        holding: boolean;
      }>(
        `SELECT owner_host AS host,
                to_char(owner_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS since,
                floor(extract(epoch FROM now() - owner_since))::int AS held,
                EXISTS (SELECT 1 FROM pg_locks
                         WHERE locktype = 'advisory' AND granted AND objsubid = 2
                           AND classid = $2::int4::oid AND objid = $3::int4::oid
                           AND database = (SELECT oid FROM pg_database
                                            WHERE datname = current_database())) AS holding
           FROM ${this.schema}.sessions WHERE id = $1`,
        [sessionId, high, low],
      );
      const row = rows[0];
      if (!row?.host) return `${head}; no process has claimed it`;
      const since = row.since ? ` since ${row.since} (${row.held} s)` : '';
      if (row.holding) return `${head}: process ${row.host} has held it${since}`;
      return `${head}: process ${row.host}, its owner${since}, has let it go and no other has taken it yet`;
    } catch {
      return `${head}; the store could not say which process holds it`;
    }
  }

  async pendingCommands(sessionId: string): Promise<StoredCommand[]> {
    const rows = await this.query<{ id: string; command: Command; result: CommandResult | null }>(
      `SELECT id, command, result FROM ${this.schema}.commands
        WHERE session_id = $1 AND done_at IS NULL ORDER BY id`,
      [sessionId],
    );
    return rows.rows.map((r) => ({ id: Number(r.id), command: r.command, result: r.result }));
  }

  async finishCommand(id: number, result: CommandResult): Promise<void> {
    // A result recorded with the command's effect stays: its caller was answered with it.
    await this.query(
      `WITH c AS (UPDATE ${this.schema}.commands SET result = coalesce(result, $2::json),
                         done_at = now()
                   WHERE id = $1 AND done_at IS NULL RETURNING id)
       SELECT pg_notify($3, id::text) FROM c`,
      [id, JSON.stringify(result), this.channels.commandDone],
    );
  }

  /** Gives every owned session back and tells the others to take them now. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    const client = this.client;
    this.client = null;
    if (!client) return;
    const ids = [...this.owned.keys()];
    this.owned.clear();
    try {
      await this.send(client, () => client.query('SELECT pg_advisory_unlock_all()'));
      for (let i = 0; i < ids.length; i += 100) {
        const batch = ids.slice(i, i + 100).join(' ');
        await this.send(client, () =>
          client.query('SELECT pg_notify($1, $2)', [this.channels.handover, batch]),
        );
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'hand-over notice failed; the sweep will do');
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: `baton ${this.hostId}`,
    });
    client.on('notification', (message) => this.onNotification(message));
    // Losing this connection loses every advisory lock with it: drop the sessions at once.
    const onGone = (error?: unknown) => {
      if (this.client !== client) return;
      this.client = null;
      this.options.logger.error({ err: error }, 'coordinator connection lost; sessions dropped');
      this.dropAll();
      const again = () => {
        if (!this.closed) void this.connect().catch(() => undefined);
      };
      if (!this.closed) setTimeout(again, 500).unref();
    };
    client.on('error', onGone);
    client.on('end', () => onGone());
    await client.connect();
    // The names are letters, digits and underscores (see notifyChannels): no quoting needed.
    const channels = Object.values(this.channels);
    await client.query(channels.map((channel) => `LISTEN ${channel}`).join('; '));
    // Closed while this connection was being opened: nothing may use it now.
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
  }

  private dropAll(): void {
    const ids = [...this.owned.keys()];
    this.owned.clear();
    for (const id of ids) this.events?.lost(id);
  }

  private async tryClaim(sessionId: string): Promise<number | null> {
    const client = this.client;
    if (!client || this.closed) return null;
    const [high, low] = lockKeys(this.options.schema, sessionId);
    const locked = await this.send(client, () =>
      client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [
        high,
        low,
      ]),
    );
    if (!locked.rows[0]?.ok) return null;
    const bumped = await this.send(client, () =>
      client.query<{ owner_epoch: string }>(
        `UPDATE ${this.schema}.sessions
            SET owner_epoch = owner_epoch + 1, owner_host = $2, owner_since = now()
          WHERE id = $1 RETURNING owner_epoch`,
        [sessionId, this.hostId],
      ),
    );
    const row = bumped.rows[0];
    if (!row) {
      await this.send(client, () =>
        client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [high, low]),
      );
      return null;
    }
    const epoch = Number(row.owner_epoch);
    this.owned.set(sessionId, epoch);
    return epoch;
  }

  /** Claims every session that has work and no live owner; runs as a safety net. */
  private async sweepOnce(): Promise<void> {
    if (!this.client || this.closed) return;
    try {
      const result = await this.query<{ session_id: string }>(
        `SELECT DISTINCT session_id FROM ${this.schema}.jobs WHERE state NOT IN ${FINAL}
         UNION SELECT DISTINCT session_id FROM ${this.schema}.commands WHERE done_at IS NULL`,
      );
      for (const { session_id: id } of result.rows) {
        if (this.owned.has(id)) continue;
        await this.claimAndTell(id);
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'coordinator sweep failed');
    }
  }

  private async claimAndTell(sessionId: string): Promise<void> {
    if (this.owned.has(sessionId) || this.claiming.has(sessionId)) return;
    const epoch = await this.claim(sessionId);
    if (epoch !== null) await this.events?.claimed(sessionId);
  }

  private onNotification(message: pg.Notification): void {
    const payload = message.payload ?? '';
    const events = this.events;
    if (!events) return;
    const channels = this.channels;
    switch (message.channel) {
      case channels.commands:
        if (this.owned.has(payload)) events.commands(payload);
        else void this.claimAndTell(payload).catch(() => undefined);
        return;
      case channels.commandDone: {
        const id = Number(payload);
        const resolve = this.waiting.get(id);
        if (!resolve) return;
        this.waiting.delete(id);
        void this.query<{ result: CommandResult | null }>(
          `SELECT result FROM ${this.schema}.commands WHERE id = $1`,
          [id],
        ).then(
          (row) =>
            resolve(row.rows[0]?.result ?? { ok: false, code: 'internal', message: 'no result' }),
          () =>
            resolve({ ok: false, code: 'store_unavailable', message: 'could not read the result' }),
        );
        return;
      }
      case channels.events: {
        const space = payload.indexOf(' ');
        events.stored(payload.slice(space + 1), Number(payload.slice(0, space)));
        return;
      }
      case channels.ephemeral: {
        const parsed = safeParse(payload);
        if (parsed && parsed.host !== this.hostId && typeof parsed.owner === 'string') {
          events.ephemeral(parsed.owner, parsed.frame);
        }
        return;
      }
      case channels.handover:
        for (const id of payload.split(' ')) void this.claimAndTell(id).catch(() => undefined);
        return;
    }
  }

  /**
   * Queues a NOTIFY. Those queued while a query runs go together in one
   * statement when it is done, so a busy process (a notice per commit) does
   * not queue a round trip per notice in front of its claims and commands.
   */
  private notify(channel: string, payload: string): void {
    const client = this.client;
    if (!client) return;
    this.outbox.push({ channel, payload });
    if (this.outbox.length === 1) this.flush(client);
  }

  /** Sends every queued NOTIFY in one statement, on the connection of the moment. */
  private flush(client: pg.Client): void {
    this.send(client, () => {
      // Lost meanwhile: the notices go on the connection that replaced it, if any.
      if (client !== this.client) {
        if (this.client) this.flush(this.client);
        else this.outbox = [];
        return null;
      }
      const batch = this.outbox.splice(0);
      return client.query(
        'SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n (c, p)',
        [batch.map((n) => n.channel), batch.map((n) => n.payload)],
      );
    }).catch((error: unknown) => this.options.logger.warn({ err: error }, 'notify failed'));
  }

  private query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('coordinator is not connected'));
    return this.send(client, () => client.query<R>(text, values));
  }

  /**
   * Runs a statement on one of the coordinator's connections once every
   * statement sent to it before is done: a connection runs one query at a
   * time, and pg no longer queues them for its caller (it warns, and pg 9
   * will refuse). Each connection has its own line, so that one lost in
   * the middle of a query holds up nothing on the one that replaces it.
   */
  private send<T>(client: pg.Client, run: () => Promise<T> | T): Promise<T> {
    const next = (this.tails.get(client) ?? Promise.resolve()).then(run);
    this.tails.set(
      client,
      next.catch(() => undefined),
    );
    return next;
  }
}

/** Two 32-bit advisory lock keys for a session (the schema keeps test runs apart). */
export function lockKeys(schema: string, sessionId: string): [number, number] {
  const digest = createHash('sha256').update(`${schema}\0${sessionId}`).digest();
  return [digest.readInt32BE(0), digest.readInt32BE(4)];
}

function safeParse(text: string): { host?: unknown; owner?: unknown; frame?: unknown } | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : null;
  } catch {
    return null;
  }
}

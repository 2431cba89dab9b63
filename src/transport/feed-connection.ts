/**
 * One client of the WebSocket event feed (SPEC §6): replay from the store,
 * then live frames, with no gap and no duplicate; session filters; client
 * frames; back-pressure.
 */

import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import { toFrame, type Feed, type FeedFrame } from '../runtime/feed.js';
import type { Store } from '../runtime/store/store.js';
import { ERROR_TABLE, toErrorReply, type ApiErrorCode, type ErrorLogger } from './errors.js';

/** Options of one {@link FeedConnection}. */
export interface FeedConnectionOptions {
  owner: string;
  /** Replay events with `seq > since` first; null: live frames only. */
  since: number | null;
  /** Only these sessions' frames; null: every session of the owner. */
  sessionIds: readonly string[] | null;
  feed: Feed;
  store: Store;
  /** Events read from the store per query while replaying. @defaultValue 500 */
  pageSize?: number | undefined;
  /** A client whose unsent bytes pass this is closed with 4008. @defaultValue 4 MiB */
  maxBufferedBytes?: number | undefined;
  /** How long a replay waits for the client to read what it was sent. @defaultValue 30000 */
  drainTimeoutMs?: number | undefined;
  /** Called once when the client is closed for not keeping up. */
  onSlowConsumer?: () => void;
  logger?: ErrorLogger | undefined;
}

/** Client frames (SPEC §6). Strict: a typo in a filter must not silently mean "everything". */
const clientFrame = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('ping') }),
    z.strictObject({
      type: z.literal('subscribe'),
      sessionIds: z.array(z.string().min(1).max(100)).max(1000),
    }),
  ],
  { error: 'unknown frame type: send {"type":"ping"} or {"type":"subscribe","sessionIds":[…]}' },
);

/** The exact wire shape of a feed frame: `{ seq?, at, type, sessionId?, jobId?, turnId?, data }`. */
export function wireFrame(frame: FeedFrame): FeedFrame {
  return {
    ...(frame.seq !== undefined ? { seq: frame.seq } : {}),
    at: frame.at,
    type: frame.type,
    ...(frame.sessionId ? { sessionId: frame.sessionId } : {}),
    ...(frame.jobId ? { jobId: frame.jobId } : {}),
    ...(frame.turnId ? { turnId: frame.turnId } : {}),
    data: frame.data,
  };
}

/**
 * Order of work, which is what makes "no gap, no duplicate" hold: subscribe
 * to the live feed first and buffer; read the store from `since` page by
 * page and send; then flush the buffer, skipping durable frames whose seq
 * was already sent; then send live. An event committed during the replay is
 * either in a page or in the buffer (or both, and then skipped by seq).
 */
export class FeedConnection {
  private readonly pageSize: number;
  private readonly maxBufferedBytes: number;
  private readonly drainTimeoutMs: number;
  private filter: Set<string> | null;
  /** Highest seq sent or passed over; durable frames at or below it are duplicates. */
  private lastSeq: number;
  /** Live frames held back while replaying; null once live. */
  private pending: { frame: FeedFrame; text: string }[] | null = [];
  private pendingBytes = 0;
  private unsubscribe: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly options: FeedConnectionOptions,
  ) {
    this.pageSize = options.pageSize ?? 500;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.filter = options.sessionIds ? new Set(options.sessionIds) : null;
    this.lastSeq = options.since ?? 0;
    socket.on('message', (data, isBinary) => this.onClientFrame(data, isBinary));
    socket.on('close', () => this.dispose());
  }

  /** Subscribes, replays, then goes live. Resolves once live (or closed). */
  async start(): Promise<void> {
    this.unsubscribe = this.options.feed.subscribe(this.options.owner, (frame) =>
      this.onLive(frame),
    );
    try {
      if (this.options.since !== null) await this.replay(this.options.since);
    } catch (error) {
      const reply = toErrorReply(error, this.options.logger);
      this.close(ERROR_TABLE[reply.body.error.code].wsClose, reply.body.error.message);
      return;
    }
    const buffered = this.pending ?? [];
    this.pending = null;
    this.pendingBytes = 0;
    for (const { frame, text } of buffered) {
      if (this.closed) return;
      this.deliver(frame, text);
    }
  }

  private async replay(since: number): Promise<void> {
    let cursor = since;
    for (;;) {
      // The whole owner stream is read and filtered here: `lastSeq` must pass
      // over other sessions' events too, or a later `subscribe` could see a gap.
      const page = await this.options.store.readEvents(this.options.owner, cursor, this.pageSize);
      // An owner's stored seqs are one unbroken run (retention deletes the
      // oldest first and keeps the newest), so a page that does not start
      // right after the cursor means the events in between were pruned,
      // before this connection or while it replayed.
      const first = page[0];
      if (first && first.seq > cursor + 1 && !this.closed) this.sincePruned(cursor, first.seq);
      for (const event of page) {
        if (this.closed) return;
        cursor = event.seq;
        this.lastSeq = Math.max(this.lastSeq, event.seq);
        const frame = toFrame(event);
        if (!this.matches(frame)) continue;
        this.socket.send(JSON.stringify(wireFrame(frame)));
        // Pace the replay by what the client reads, not by how fast the store reads.
        if (this.socket.bufferedAmount > this.maxBufferedBytes / 2) await this.drained();
      }
      if (page.length < this.pageSize || this.closed) return;
    }
  }

  /** Resolves when everything sent so far reached the OS; a client that reads nothing is closed 4008. */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.slowConsumer();
        resolve();
      }, this.drainTimeoutMs);
      // An empty ping's callback runs once every byte queued before it was written.
      this.socket.ping(undefined, undefined, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private onLive(frame: FeedFrame): void {
    if (this.closed) return;
    if (this.pending) {
      // Held as text: its size is what bounds the buffer of a client that is still replaying.
      const text = JSON.stringify(wireFrame(frame));
      this.pending.push({ frame, text });
      this.pendingBytes += text.length;
      if (this.pendingBytes > this.maxBufferedBytes) this.slowConsumer();
      return;
    }
    this.deliver(frame);
  }

  private deliver(frame: FeedFrame, text?: string): void {
    if (frame.seq !== undefined) {
      if (frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
    }
    if (!this.matches(frame)) return;
    this.socket.send(text ?? JSON.stringify(wireFrame(frame)));
    if (this.socket.bufferedAmount > this.maxBufferedBytes) this.slowConsumer();
  }

  private matches(frame: FeedFrame): boolean {
    return (
      this.filter === null || (frame.sessionId !== undefined && this.filter.has(frame.sessionId))
    );
  }

  private onClientFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (isBinary)
      return this.sendError('invalid_request', 'binary frames are not accepted; send JSON text');
    let value: unknown;
    try {
      value = JSON.parse(rawText(data));
    } catch {
      return this.sendError('invalid_json', 'the frame is not valid JSON');
    }
    const parsed = clientFrame.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
      return this.sendError('invalid_request', `${where}${issue?.message ?? 'bad frame'}`);
    }
    if (parsed.data.type === 'ping') {
      this.sendControl({ type: 'pong' });
    } else {
      const ids = parsed.data.sessionIds;
      this.filter = ids.length === 0 ? null : new Set(ids);
      // Acknowledged, so that a client knows from when on the filter holds.
      this.sendControl({ type: 'subscribed', sessionIds: ids });
    }
  }

  /**
   * Says that events `since + 1 … firstSeq - 1` are gone, and goes on from
   * `firstSeq`. The connection stays open: the client is already subscribed,
   * so it can reload over HTTP without missing what happens meanwhile, and
   * the seq it resumes from later is simply the last one it received. A
   * client that knows nothing of this code still sees the jump in seqs; one
   * that closes on it can reconnect with `since=firstSeq - 1`.
   */
  private sincePruned(since: number, firstSeq: number): void {
    this.sendError(
      'since_pruned',
      `events after since=${since} up to seq ${firstSeq - 1} were pruned (older than the retention): ` +
        `reload what you show over HTTP; this feed goes on from seq ${firstSeq}, the first retained ` +
        `event (or reconnect with since=${firstSeq - 1})`,
    );
  }

  private sendError(code: ApiErrorCode, message: string): void {
    this.sendControl({ type: 'error', error: { code, message } });
  }

  private sendControl(frame: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  private slowConsumer(): void {
    if (this.closed) return;
    this.options.onSlowConsumer?.();
    this.close(
      ERROR_TABLE.slow_consumer.wsClose,
      'slow consumer: reconnect with since=<the last seq you received>',
    );
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.dispose();
    // Close reasons are limited to 123 bytes by the protocol.
    this.socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }

  private dispose(): void {
    this.closed = true;
    this.pending = null;
    this.pendingBytes = 0;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

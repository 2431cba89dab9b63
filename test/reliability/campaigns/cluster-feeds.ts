/**
 * The cluster campaign's feed clients: one WebSocket client per owner per
 * process slot. Each connects first with `since=0` and, whenever its process
 * is restarted (or its connection ends while the process lives), again with
 * `since=<last seq it saw>`, as a frontend does. It keeps every frame it is
 * given; the judging (gaps, duplicates, order, frames of another owner) is
 * done at the end against the store (see cluster-count.ts), once every
 * session's owner is known.
 *
 * A client has one socket at a time: frames that a replaced socket still
 * delivers are ignored, so that a duplicate is always the server's.
 */

import WebSocket from 'ws';
import type { Generation, ServeSlots } from './cluster-procs.js';
import type { OwnerName } from './cluster-plan.js';

export interface SeenFrame {
  seq: number | null;
  type: string;
  sessionId: string | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class FeedClient {
  readonly frames: SeenFrame[] = [];
  /** Error frames the server sent (none is expected). */
  readonly errors: string[] = [];
  connections = 0;
  /** Connections that ended while their process was neither signalled nor gone. */
  unexpectedCloses = 0;
  private ws: WebSocket | null = null;
  private gen: Generation | null = null;
  private last = 0;
  private closed = false;

  constructor(
    readonly owner: OwnerName,
    readonly token: string,
    readonly slot: number,
  ) {}

  /** The last seq received: the `since` of the next connection. */
  get lastSeq(): number {
    return this.last;
  }

  /** Follows `gen` from now on; opens a connection to it with `since` = the last seq seen. */
  attach(gen: Generation): void {
    if (this.closed) return;
    this.drop();
    this.gen = gen;
    void this.open(gen);
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  private drop(): void {
    const ws = this.ws;
    this.ws = null;
    ws?.removeAllListeners('message');
    ws?.on('error', () => undefined);
    ws?.terminate();
  }

  /** Connects, retrying (bounded by the generation's life) while the process listens. */
  private async open(gen: Generation): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.closed || this.gen !== gen || gen.signalled || gen.exited) return;
      const url = gen.proc.url;
      if (url === null) return;
      const ws = new WebSocket(
        `${url.replace(/^http/, 'ws')}/v1/events?token=${this.token}&since=${this.last}`,
      );
      this.ws = ws;
      ws.on('message', (data) => {
        if (this.ws !== ws) return;
        this.record(String(data));
      });
      const opened = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(true));
        ws.once('error', () => resolve(false));
        ws.once('close', () => resolve(false));
      });
      if (opened) {
        this.connections++;
        ws.once('close', () => {
          if (this.ws !== ws || this.closed) return;
          this.ws = null;
          // Closed under a process that lives: resume on it with `since`, as a client must.
          if (!gen.signalled && !gen.exited) {
            this.unexpectedCloses++;
            setTimeout(() => {
              if (this.gen === gen && this.ws === null) void this.open(gen);
            }, 100);
          }
        });
        return;
      }
      if (this.ws === ws) this.ws = null;
      ws.terminate();
      await sleep(100);
    }
  }

  private record(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      this.errors.push(`not JSON: ${text.slice(0, 100)}`);
      return;
    }
    const f = typeof frame === 'object' && frame !== null ? (frame as Record<string, unknown>) : {};
    const type = typeof f['type'] === 'string' ? f['type'] : '?';
    if (type === 'error' || type === 'pong') {
      if (type === 'error') this.errors.push(JSON.stringify(f['error']).slice(0, 300));
      return;
    }
    const seq = typeof f['seq'] === 'number' ? f['seq'] : null;
    const sessionId = typeof f['sessionId'] === 'string' ? f['sessionId'] : null;
    this.frames.push({ seq, type, sessionId });
    if (seq !== null && seq > this.last) this.last = seq;
  }
}

/** Every client of the campaign, attached to each new generation of its slot as it listens. */
export class FeedClients {
  readonly clients: FeedClient[] = [];

  constructor(slots: ServeSlots, owners: readonly { name: OwnerName; token: string }[]) {
    slots.current.forEach((_, slot) => {
      for (const owner of owners) this.clients.push(new FeedClient(owner.name, owner.token, slot));
    });
    slots.onListening = (gen) => {
      for (const client of this.clients) if (client.slot === gen.slot) client.attach(gen);
    };
  }

  /** Waits until every client has seen its owner's last seq; false after `timeoutMs`. */
  async caughtUp(lastSeqs: ReadonlyMap<string, number>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.clients.every((c) => c.lastSeq >= (lastSeqs.get(c.owner) ?? 0))) return true;
      await sleep(50);
    }
    return false;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

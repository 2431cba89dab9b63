/**
 * The cluster campaign's client: sends the planned work over HTTP, each
 * request to a process picked at random (so most are forwarded to the
 * session's owner), and keeps going across kills.
 *
 * Only an answer counts. A request that got none (its process died), or got
 * a 503 (the owner did not answer in time, or the process was stopping), may
 * or may not have happened; it is looked up in the store by its unique text
 * once nothing can make it happen any more: the process it was sent to has
 * exited and PostgreSQL has ended its connections (a backend reads what a
 * killed process had sent before it sees the connection gone, so it can still
 * commit), and no forwarded command of its session is waiting to run (a
 * command outlives the process that stored it: the session's next owner runs
 * it). Only then is a request found missing sent again, so that a resend
 * never doubles it.
 */

import pg from 'pg';
import { callApi, errorCode, get, NetworkError, str, type ApiReply } from './api.js';
import {
  jobKey,
  OWNERS,
  type ClusterPlan,
  type ItemState,
  type JobItem,
  type MessageItem,
  type SessionItem,
} from './cluster-plan.js';
import type { Generation, ServeSlots } from './cluster-procs.js';
import type { Rng } from './rng.js';

export interface InflightRequest {
  gen: Generation;
  sessionId: string | null;
  /** A process was killed while it was on the wire. */
  crossed: boolean;
}

export interface DriverStats {
  requests: number;
  /** Requests on the wire at a kill that were answered all the same (forwarded to a new owner). */
  answeredAcrossKill: number;
  /** Requests that got no answer because their process died under them. */
  unanswered: number;
  /** 503 answers (by code): the outcome is unknown, as for no answer. */
  unavailable: Record<string, number>;
  /** Of the unknown outcomes, found stored / not stored (sent again). */
  foundStored: number;
  foundMissing: number;
  /** Completions answered `409 job_finished` after an earlier try whose answer was lost. */
  completedTwice: number;
  /** Answers that no request of this campaign should get, with the process that gave them. */
  unexpected: string[];
}

/** A request over the wire longer than the server's 15 s forward wait: the server answers first. */
const REQUEST_TIMEOUT_MS = 60_000;

/** Longest a live process may still act on a request whose connection broke (see lookable). */
const LIVE_HANDLER_MS = 20_000;

/** An answer, and whether a process was killed while its request was on the wire. */
type Reply = ApiReply & { crossed: boolean };

type Item = SessionItem | JobItem | MessageItem;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ClusterDriver {
  readonly stats: DriverStats = {
    requests: 0,
    answeredAcrossKill: 0,
    unanswered: 0,
    unavailable: {},
    foundStored: 0,
    foundMissing: 0,
    completedTwice: 0,
    unexpected: [],
  };
  /** Acknowledged (2xx) creations, checked against the store at the end. */
  readonly acked = {
    sessions: new Set<string>(),
    jobs: new Set<string>(),
    /** User message texts (each is unique). */
    messages: new Set<string>(),
  };
  /** The current kill event: external jobs are completed from their `completeFrom` on. */
  epoch = 0;
  /** Set for the end: every completion may go, and no quota holds anything back. */
  final = false;
  /** Requests the driver may still send (raised by the campaign before each kill event). */
  private allowance = 0;
  /**
   * Requests on the wire: a kill can be aimed at one (at its caller or its
   * session's owner); a kill marks those it finds `crossed`.
   */
  readonly inflight = new Set<InflightRequest>();
  /** Called as each request leaves (a kill can be aimed at it). */
  onSent: ((request: InflightRequest) => void) | null = null;
  /** Where and when each unknown item was sent (`gen` null: it answered 503). */
  private readonly sentTo = new Map<Item, { gen: Generation | null; at: number }>();
  private reconciling = false;
  /** Exited generations that PostgreSQL holds no connection of any more. */
  private readonly gone = new WeakSet<Generation>();
  private paceMs = 0;
  private stopped = false;
  private workers: Promise<void>[] = [];

  constructor(
    readonly plan: ClusterPlan,
    private readonly slots: ServeSlots,
    private readonly sql: pg.Pool,
    private readonly schema: string,
    private readonly r: Rng,
  ) {}

  allow(n: number): void {
    this.allowance += n;
  }

  /** Starts `concurrency` workers that send work until {@link stop}. */
  start(concurrency: number): void {
    this.workers = Array.from({ length: concurrency }, () => this.worker());
  }

  /**
   * Each worker pauses up to `ms` between requests, so that the requests of
   * a kill event spread over it and kills find some on the wire.
   */
  pace(ms: number): void {
    this.paceMs = ms;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }

  /** Work not yet known to be done. */
  remaining(): number {
    return this.open().length;
  }

  /** A few items not yet known to be done, for an error message. */
  describeRemaining(): string[] {
    return this.open()
      .slice(0, 8)
      .map((item) => {
        if (item.kind === 'session') return `session ${item.title} ${item.state}`;
        const session = this.plan.sessions[item.session];
        const where = `in ${session?.id ?? session?.title}`;
        if (item.kind === 'message') return `message "${item.content}" ${item.state} ${where}`;
        return `job ${jobKey(item.body)} ${item.id ?? ''} ${item.state}/completion ${item.completed} ${where}`;
      });
  }

  /** Sends whatever is left with no quota; true once nothing is left, false after `timeoutMs`. */
  async finish(timeoutMs: number): Promise<boolean> {
    this.final = true;
    this.allowance = Number.POSITIVE_INFINITY;
    const deadline = Date.now() + timeoutMs;
    while (this.remaining() > 0) {
      if (Date.now() > deadline) return false;
      await sleep(100);
    }
    return true;
  }

  private open(): Item[] {
    const open = (state: ItemState) => state !== 'done' && state !== 'failed';
    const items: Item[] = this.plan.sessions.filter((s) => open(s.state));
    for (const item of this.plan.work) {
      if (this.plan.sessions[item.session]?.state === 'failed') continue;
      if (open(item.state) || (item.kind === 'job' && open(item.completed))) items.push(item);
    }
    return items;
  }

  private async worker(): Promise<void> {
    while (!this.stopped) {
      const task = this.next();
      if (!task) {
        await sleep(25);
        continue;
      }
      await task();
      if (!this.final) await sleep(this.r.int(0, this.paceMs));
    }
  }

  /** The next thing to do, or null when nothing is ready. */
  private next(): (() => Promise<void>) | null {
    if (!this.reconciling && [...this.sentTo.keys()].some((i) => this.lookable(i))) {
      this.reconciling = true;
      return () => this.reconcile().finally(() => (this.reconciling = false));
    }
    if (this.allowance < 1) return null;
    const gen = this.slots.pick(this.r);
    if (!gen) return null;
    const session = this.plan.sessions.find((s) => s.state === 'todo');
    if (session) return this.spend(() => this.createSession(gen, session));
    for (const item of this.plan.work) {
      const sessionId = this.plan.sessions[item.session]?.id;
      if (!sessionId) continue;
      if (item.state === 'todo') {
        return this.spend(() =>
          item.kind === 'job'
            ? this.startJob(gen, item, sessionId)
            : this.sendMessage(gen, item, sessionId),
        );
      }
      if (
        item.kind === 'job' &&
        item.state === 'done' &&
        item.completed === 'todo' &&
        (this.final || item.completeFrom <= this.epoch)
      ) {
        return this.spend(() => this.complete(gen, item));
      }
    }
    return null;
  }

  /** Takes one request from the allowance; `begin` marks its item in flight at once. */
  private spend(begin: () => () => Promise<void>): () => Promise<void> {
    this.allowance--;
    return begin();
  }

  private createSession(gen: Generation, s: SessionItem): () => Promise<void> {
    s.state = 'inflight';
    const token = tokenOf(s.owner);
    return async () => {
      const reply = await this.send(gen, token, 'POST', '/v1/sessions', { title: s.title }, s);
      if (!reply) return;
      if (!this.expect(reply.status === 201, gen, `create session ${s.title}`, reply)) {
        s.state = 'failed';
        return;
      }
      s.id = str(reply.body, 'id');
      s.state = 'done';
      this.acked.sessions.add(s.id);
    };
  }

  private sendMessage(gen: Generation, m: MessageItem, sessionId: string): () => Promise<void> {
    m.state = 'inflight';
    const token = this.tokenOfSession(m.session);
    return async () => {
      const path = `/v1/sessions/${sessionId}/messages`;
      const reply = await this.send(gen, token, 'POST', path, { content: m.content }, m);
      if (!reply) return;
      if (!this.expect(reply.status === 202, gen, `send "${m.content}"`, reply)) {
        m.state = 'failed';
        return;
      }
      m.state = 'done';
      this.acked.messages.add(m.content);
    };
  }

  private startJob(gen: Generation, job: JobItem, sessionId: string): () => Promise<void> {
    job.state = 'inflight';
    const token = this.tokenOfSession(job.session);
    return async () => {
      const path = `/v1/sessions/${sessionId}/jobs`;
      const reply = await this.send(gen, token, 'POST', path, job.body, job);
      if (!reply) return;
      if (!this.expect(reply.status === 201, gen, `start job ${jobKey(job.body)}`, reply)) {
        job.state = 'failed';
        job.completed = 'failed';
        return;
      }
      job.id = str(reply.body, 'id');
      job.state = 'done';
      // Some external jobs stay running across a kill event or two before they are completed.
      job.completeFrom = this.epoch + (this.r.chance(0.3) ? this.r.int(1, 2) : 0);
      this.acked.jobs.add(job.id);
    };
  }

  private complete(gen: Generation, job: JobItem): () => Promise<void> {
    job.completed = 'inflight';
    job.completeTries++;
    const token = this.tokenOfSession(job.session);
    return async () => {
      const exitCode = this.r.chance(0.85) ? 0 : 1;
      const body = { exitCode, output: `done ${jobKey(job.body)}` };
      let reply: Reply;
      try {
        const path = `/v1/jobs/${job.id}/complete`;
        reply = await this.call(gen, token, 'POST', path, body, this.sessionIdOf(job.session));
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        // Sent again (through another process): a completion that landed makes it a 409.
        job.completed = 'todo';
        return;
      }
      if (reply.status === 503) {
        job.completed = 'todo';
        return;
      }
      const again = reply.status === 409 && errorCode(reply.body) === 'job_finished';
      if (again && job.completeTries > 1) {
        this.stats.completedTwice++;
        job.completed = 'done';
        return;
      }
      const ok = this.expect(reply.status === 200, gen, `complete job ${job.id}`, reply);
      job.completed = ok ? 'done' : 'failed';
    };
  }

  /**
   * Sends a request of `item`; on no answer or a 503 marks the item unknown
   * (to be looked up later) and returns null.
   */
  private async send(
    gen: Generation,
    token: string,
    method: string,
    path: string,
    body: unknown,
    item: Item,
  ): Promise<Reply | null> {
    try {
      const sessionId = item.kind === 'session' ? null : this.sessionIdOf(item.session);
      const reply = await this.call(gen, token, method, path, body, sessionId);
      if (reply.status !== 503) return reply;
      // The process answered: it will do nothing more for this request.
      this.sentTo.set(item, { gen: null, at: Date.now() });
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      this.sentTo.set(item, { gen, at: Date.now() });
    }
    item.state = 'unknown';
    return null;
  }

  private async call(
    gen: Generation,
    token: string,
    method: string,
    path: string,
    body: unknown,
    sessionId: string | null,
  ): Promise<Reply> {
    this.stats.requests++;
    const url = gen.proc.url;
    if (url === null) throw new NetworkError('not listening');
    const request: InflightRequest = { gen, sessionId, crossed: false };
    this.inflight.add(request);
    this.onSent?.(request);
    try {
      const reply = await callApi(url, token, method, path, body, REQUEST_TIMEOUT_MS);
      if (request.crossed) this.stats.answeredAcrossKill++;
      if (reply.status === 503) {
        const code = errorCode(reply.body) || '?';
        this.stats.unavailable[code] = (this.stats.unavailable[code] ?? 0) + 1;
      }
      return { ...reply, crossed: request.crossed };
    } catch (error) {
      if (error instanceof NetworkError) this.stats.unanswered++;
      throw error;
    } finally {
      this.inflight.delete(request);
    }
  }

  /**
   * Whether an unknown item can be looked up now: its process answered, or
   * is gone. A connection that broke under a process nobody signalled (none
   * should) leaves its handler running at most as long as a forwarded call
   * waits (15 s): after that, it can do nothing more either.
   */
  private lookable(item: Item): boolean {
    if (item.state !== 'unknown') return false;
    const sent = this.sentTo.get(item);
    if (!sent?.gen) return true;
    return sent.gen.exited || (!sent.gen.signalled && Date.now() - sent.at > LIVE_HANDLER_MS);
  }

  /** Finds out, from the store, what happened to every request whose answer never came. */
  private async reconcile(): Promise<void> {
    const items = [...this.sentTo.keys()].filter((i) => this.lookable(i));
    for (const item of items) {
      const gen = this.sentTo.get(item)?.gen;
      if (gen?.exited && !(await this.backendsGone(gen))) continue;
      if (item.kind === 'session') {
        const { rows } = await this.sql.query<{ id: string }>(
          `SELECT id FROM ${this.schema}.sessions WHERE title = $1 AND owner = $2`,
          [item.title, item.owner],
        );
        this.settle(item, rows[0]?.id ?? null);
        if (rows[0]) item.id = rows[0].id;
        continue;
      }
      const sessionId = this.plan.sessions[item.session]?.id;
      if (!sessionId) throw new Error('an item of a session with no id was sent');
      // A forwarded command not yet run may still store it: not now.
      const waiting = await this.sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${this.schema}.commands
          WHERE session_id = $1 AND done_at IS NULL AND result IS NULL`,
        [sessionId],
      );
      if ((waiting.rows[0]?.n ?? 0) > 0) continue;
      if (item.kind === 'job') {
        const key = jobKey(item.body);
        const { rows } = await this.sql.query<{ id: string }>(
          `SELECT id FROM ${this.schema}.jobs
            WHERE session_id = $1 AND (command = $2 OR (command IS NULL AND name = $2))`,
          [sessionId, key],
        );
        this.settle(item, rows[0]?.id ?? null);
        if (rows[0]) item.id = rows[0].id;
        if (rows[0]) item.completeFrom = this.epoch;
      } else {
        const { rows } = await this.sql.query<{ id: string }>(
          `SELECT id FROM ${this.schema}.messages
            WHERE session_id = $1 AND role = 'user' AND content = $2`,
          [sessionId, item.content],
        );
        this.settle(item, rows[0]?.id ?? null);
      }
    }
  }

  /**
   * Whether PostgreSQL has ended every connection of an exited generation:
   * until then a statement it sent before it died may still run and commit.
   */
  private async backendsGone(gen: Generation): Promise<boolean> {
    if (this.gone.has(gen)) return true;
    const { rows } = await this.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
      [gen.appName],
    );
    if ((rows[0]?.n ?? 0) > 0) return false;
    this.gone.add(gen);
    return true;
  }

  private settle(item: Item, found: string | null): void {
    this.sentTo.delete(item);
    if (found !== null) this.stats.foundStored++;
    else this.stats.foundMissing++;
    item.state = found !== null ? 'done' : 'todo';
  }

  private sessionIdOf(index: number): string | null {
    return this.plan.sessions[index]?.id ?? null;
  }

  private tokenOfSession(index: number): string {
    const owner = this.plan.sessions[index]?.owner;
    if (!owner) throw new Error(`no session ${index}`);
    return tokenOf(owner);
  }

  /** False (and recorded) when an answer is not the one expected; the item is then given up. */
  private expect(ok: boolean, gen: Generation, what: string, reply: Reply): boolean {
    if (ok) return true;
    const error = get(reply.body, 'error') ?? reply.body;
    const kill = reply.crossed ? ' (a process was killed while it was on the wire)' : '';
    const detail = `${what} via slot ${gen.slot}#${gen.n}${kill}: ${reply.status} ${JSON.stringify(error)}`;
    if (this.stats.unexpected.length < 50) this.stats.unexpected.push(detail.slice(0, 400));
    return false;
  }
}

function tokenOf(owner: string): string {
  const found = OWNERS.find((o) => o.name === owner);
  if (!found) throw new Error(`no owner ${owner}`);
  return found.token;
}

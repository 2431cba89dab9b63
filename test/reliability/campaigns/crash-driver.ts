/**
 * The crash campaign's client: sends the planned work to whichever `baton
 * serve` is up, through the HTTP API, and keeps going across kills. A request
 * that got no answer has an unknown outcome; after the restart the driver
 * looks it up (by its unique title, command, name or content) and sends it
 * again only if it was not stored. External jobs are completed by the driver,
 * retried across restarts; `409 job_finished` means an earlier try landed.
 */

import { callApi, errorCode, get, list, NetworkError, str } from './api.js';
import {
  jobKey,
  type CrashPlan,
  type ItemState,
  type JobItem,
  type MessageItem,
} from './crash-plan.js';
import type { Rng } from './rng.js';

export interface DriverStats {
  requests: number;
  /** Requests that got no answer because the server died under them. */
  unknown: number;
  /** Of those, found stored after the restart / not stored (sent again). */
  foundStored: number;
  foundMissing: number;
  /** Completions answered 409 job_finished (an earlier try had landed). */
  completedTwice: number;
  /** Answers that no request of this campaign should get. */
  unexpected: string[];
}

type Task = () => Promise<void>;

export class CrashDriver {
  readonly stats: DriverStats = {
    requests: 0,
    unknown: 0,
    foundStored: 0,
    foundMissing: 0,
    completedTwice: 0,
    unexpected: [],
  };
  /** Acknowledged (2xx) creations, checked against the store at the end. */
  readonly acked = {
    sessions: new Set<string>(),
    jobs: new Set<string>(),
    messages: new Set<string>(),
  };
  epoch = 0;
  /** Set for the last run: nothing is held back for a later epoch any more. */
  final = false;
  /** Job-start requests sent and not answered yet. */
  inflightStarts = 0;
  /** Called when a job-start request has been sent (a kill mode aims at it). */
  onJobStartSent: (() => void) | null = null;

  constructor(
    readonly plan: CrashPlan,
    private readonly token: string,
    private readonly r: Rng,
  ) {}

  /** A few items not yet known to be done, for an error message. */
  describeRemaining(): string {
    const open = (state: ItemState) => state !== 'done' && state !== 'failed';
    const items = [
      ...this.plan.sessions.filter((s) => open(s.state)).map((s) => `${s.title} ${s.state}`),
      ...this.plan.work
        .filter((i) => open(i.state) || (i.kind === 'job' && open(i.completed)))
        .map((i) =>
          i.kind === 'job'
            ? `job ${jobKey(i.body)} ${i.state}/${i.completed} from ${i.completeFrom} session ${this.plan.sessions[i.session]?.state}`
            : `message ${i.content} ${i.state} session ${this.plan.sessions[i.session]?.state}`,
        ),
    ];
    return items.slice(0, 6).join('; ');
  }

  /** Work not yet known to be done. */
  remaining(): number {
    const open = (state: ItemState) => state !== 'done' && state !== 'failed';
    let n = this.plan.sessions.filter((s) => open(s.state)).length;
    for (const item of this.plan.work) {
      const sessionFailed = this.plan.sessions[item.session]?.state === 'failed';
      if (sessionFailed) continue;
      if (open(item.state)) n++;
      if (item.kind === 'job' && open(item.completed)) n++;
    }
    return n;
  }

  /**
   * Sends up to `quota` requests with `concurrency` in flight; stops at the
   * first request the server does not answer (it was killed).
   */
  async work(url: string, quota: number, concurrency = 6): Promise<'dead' | 'quota' | 'idle'> {
    let used = 0;
    let dead = false;
    const worker = async (): Promise<void> => {
      while (!dead && used < quota) {
        const task = this.next(url);
        if (!task) return;
        used++;
        try {
          await task();
        } catch (error) {
          if (error instanceof NetworkError) dead = true;
          else throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
    if (dead) return 'dead';
    return used >= quota ? 'quota' : 'idle';
  }

  /** After a restart: finds out what happened to every request that got no answer. */
  async reconcile(url: string): Promise<void> {
    const plan = this.plan;
    if (plan.sessions.some((s) => s.state === 'unknown')) {
      const { body } = await this.call(url, 'GET', '/v1/sessions');
      const byTitle = new Map(list(body, 'sessions').map((s) => [str(s, 'title'), str(s, 'id')]));
      for (const s of plan.sessions) {
        if (s.state !== 'unknown') continue;
        const id = byTitle.get(s.title);
        this.found(id !== undefined);
        s.state = id !== undefined ? 'done' : 'todo';
        s.id = id ?? null;
      }
    }
    const bySession = new Map<number, (JobItem | MessageItem)[]>();
    for (const item of plan.work) {
      if (item.state !== 'unknown') continue;
      bySession.set(item.session, [...(bySession.get(item.session) ?? []), item]);
    }
    for (const [index, items] of bySession) {
      const sessionId = plan.sessions[index]?.id;
      if (!sessionId) throw new Error('an item of an unknown session was sent');
      if (items.some((i) => i.kind === 'job')) {
        const { body } = await this.call(url, 'GET', `/v1/jobs?sessionId=${sessionId}`);
        const jobs = new Map(
          list(body, 'jobs').map((j) => [str(j, 'command') || str(j, 'name'), str(j, 'id')]),
        );
        for (const item of items) {
          if (item.kind !== 'job') continue;
          const id = jobs.get(jobKey(item.body));
          this.found(id !== undefined);
          item.state = id !== undefined ? 'done' : 'todo';
          item.id = id ?? null;
        }
      }
      if (items.some((i) => i.kind === 'message')) {
        const { body } = await this.call(url, 'GET', `/v1/sessions/${sessionId}/messages`);
        const said = new Set(
          list(body, 'messages')
            .filter((m) => str(m, 'role') === 'user')
            .map((m) => str(m, 'content')),
        );
        for (const item of items) {
          if (item.kind !== 'message') continue;
          this.found(said.has(item.content));
          item.state = said.has(item.content) ? 'done' : 'todo';
        }
      }
    }
  }

  private found(stored: boolean): void {
    if (stored) this.stats.foundStored++;
    else this.stats.foundMissing++;
  }

  /** The next request to send, or null when nothing is ready. */
  private next(url: string): Task | null {
    const session = this.plan.sessions.find((s) => s.state === 'todo');
    if (session) {
      session.state = 'inflight';
      return async () => {
        const reply = await this.send(url, 'POST', '/v1/sessions', { title: session.title }, () => {
          session.state = 'unknown';
        });
        if (!this.expect(reply.status === 201, 'create session', reply)) {
          session.state = 'failed';
          return;
        }
        session.id = str(reply.body, 'id');
        session.state = 'done';
        this.acked.sessions.add(session.id);
      };
    }
    for (const item of this.plan.work) {
      const sessionId = this.plan.sessions[item.session]?.id;
      if (!sessionId) continue;
      if (item.state === 'todo') return this.create(url, item, sessionId);
      if (
        item.kind === 'job' &&
        item.state === 'done' &&
        item.completed === 'todo' &&
        (this.final || item.completeFrom <= this.epoch)
      ) {
        return this.complete(url, item);
      }
    }
    return null;
  }

  private create(url: string, item: JobItem | MessageItem, sessionId: string): Task {
    item.state = 'inflight';
    if (item.kind === 'message') {
      return async () => {
        const path = `/v1/sessions/${sessionId}/messages`;
        const reply = await this.send(url, 'POST', path, { content: item.content }, () => {
          item.state = 'unknown';
        });
        item.state = this.expect(reply.status === 202, 'send message', reply) ? 'done' : 'failed';
        if (item.state === 'failed') return;
        this.acked.messages.add(item.content);
      };
    }
    return async () => {
      const path = `/v1/sessions/${sessionId}/jobs`;
      this.inflightStarts++;
      const sent = this.send(url, 'POST', path, item.body, () => {
        item.state = 'unknown';
      }).finally(() => this.inflightStarts--);
      this.onJobStartSent?.();
      const reply = await sent;
      if (!this.expect(reply.status === 201, 'start job', reply)) {
        item.state = 'failed';
        item.completed = 'failed';
        return;
      }
      item.id = str(reply.body, 'id');
      item.state = 'done';
      // Some external jobs stay running across a restart or two before they are completed.
      item.completeFrom = this.epoch + (this.r.chance(0.3) ? this.r.int(1, 3) : 0);
      this.acked.jobs.add(item.id);
    };
  }

  private complete(url: string, item: JobItem): Task {
    item.completed = 'inflight';
    return async () => {
      const exitCode = this.r.chance(0.85) ? 0 : 1;
      const body = { exitCode, output: `done ${jobKey(item.body)}` };
      const reply = await this.send(url, 'POST', `/v1/jobs/${item.id}/complete`, body, () => {
        item.completed = 'todo';
      });
      if (reply.status === 409 && errorCode(reply.body) === 'job_finished') {
        this.stats.completedTwice++;
      } else {
        item.completed = this.expect(reply.status === 200, 'complete job', reply)
          ? 'done'
          : 'failed';
        return;
      }
      item.completed = 'done';
    };
  }

  /** Sends a request; on no answer runs `lost` and rethrows the {@link NetworkError}. */
  private async send(
    url: string,
    method: string,
    path: string,
    body: unknown,
    lost: () => void,
  ): ReturnType<typeof callApi> {
    this.stats.requests++;
    try {
      return await callApi(url, this.token, method, path, body);
    } catch (error) {
      if (error instanceof NetworkError) {
        this.stats.unknown++;
        lost();
      }
      throw error;
    }
  }

  private async call(url: string, method: string, path: string): ReturnType<typeof callApi> {
    this.stats.requests++;
    const reply = await callApi(url, this.token, method, path);
    if (reply.status !== 200) this.unexpected(`${method} ${path}`, reply);
    return reply;
  }

  /** False (and recorded) when an answer is not the one expected; the item is then given up. */
  private expect(ok: boolean, what: string, reply: { status: number; body: unknown }): boolean {
    if (!ok) this.unexpected(what, reply);
    return ok;
  }

  private unexpected(what: string, reply: { status: number; body: unknown }): void {
    const detail = `${what}: ${reply.status} ${JSON.stringify(get(reply.body, 'error') ?? reply.body)}`;
    if (this.stats.unexpected.length < 50) this.stats.unexpected.push(detail.slice(0, 300));
  }
}

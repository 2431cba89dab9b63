/**
 * Prometheus metrics of one app (`GET /metrics`). Each app gets its own
 * registry, so that several apps in one process (tests) never share counters.
 */

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FINAL_STATES } from '../machines/job.machine.js';
import type { FeedFrame } from '../runtime/feed.js';
import type { Baton } from '../runtime/system.js';
import { JOB_STATES } from './schemas.js';

/** The metrics an app keeps, and the hooks the transport feeds them through. */
export interface TransportMetrics {
  readonly registry: Registry;
  /** Open WebSocket feed connections. */
  readonly feedClients: Gauge;
  /** Feed connections closed with 4008 because the client did not keep up. */
  readonly slowConsumerCloses: Counter;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Stops listening to the feed. */
  close(): void;
}

// Waits that never end (a job stuck behind a hung lease) must not grow the maps for ever.
const MAX_TRACKED = 10_000;

/**
 * Creates the registry. Follow-up latency, attempts, lock waits, jobs by
 * state and jobs finished are derived from the feed's durable events of every
 * owner (in PostgreSQL mode every process sees every event), so a scrape
 * never reads the job table: the unfinished jobs are read once, at start.
 */
export function createMetrics(baton: Baton, version: string): TransportMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'baton_build_info',
    help: 'Always 1; the labels say which build runs',
    labelNames: ['version', 'node'] as const,
    registers: [registry],
  }).set({ version, node: process.version }, 1);
  const feedClients = new Gauge({
    name: 'baton_feed_clients',
    help: 'Open WebSocket feed connections',
    registers: [registry],
  });
  const slowConsumerCloses = new Counter({
    name: 'baton_feed_slow_consumer_closes_total',
    help: 'Feed connections closed with 4008 because the client did not read fast enough',
    registers: [registry],
  });
  const httpRequests = new Counter({
    name: 'baton_http_requests_total',
    help: 'HTTP requests answered, by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  // Unfinished jobs and their state: read once, then moved by job.state events.
  const unfinished = new Map<string, string>();
  let loaded = false;
  const early: { jobId: string; state: string }[] = [];
  void baton.store.listJobs({ unfinished: true }).then(
    (rows) => {
      for (const row of rows) unfinished.set(row.id, row.state);
      loaded = true;
      for (const move of early.splice(0)) moveJob(move.jobId, move.state);
    },
    () => {
      loaded = true;
    },
  );
  const moveJob = (jobId: string, state: string) => {
    if (!loaded) {
      early.push({ jobId, state });
      return;
    }
    if ((FINAL_STATES as readonly string[]).includes(state)) unfinished.delete(jobId);
    else unfinished.set(jobId, state);
  };
  new Gauge({
    name: 'baton_jobs',
    help: 'Unfinished jobs by state',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(
        JOB_STATES.filter((s) => !(FINAL_STATES as readonly string[]).includes(s)).map((s) => [
          s,
          0,
        ]),
      );
      for (const state of unfinished.values()) counts.set(state, (counts.get(state) ?? 0) + 1);
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  const finished = new Counter({
    name: 'baton_jobs_finished_total',
    help: 'Jobs whose process (or external work) ended, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const ended = new Counter({
    name: 'baton_jobs_ended_total',
    help: 'Jobs that reached a final state, by state',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'baton_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'baton_follow_up_latency_seconds',
    help: 'Time from a job finishing to its continuation being stored',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const attempts = new Histogram({
    name: 'baton_follow_up_attempts',
    help: 'Agent attempts a job took, by how it ended',
    labelNames: ['result'] as const,
    buckets: [1, 2, 3, 4, 5, 7, 10, 20],
    registers: [registry],
  });
  const lockWait = new Histogram({
    name: 'baton_lock_wait_seconds',
    help: 'Time a live turn or follow-up waited for the session lock',
    labelNames: ['kind'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900],
    registers: [registry],
  });

  const waiting = new Map<string, number>();
  const track = (key: string, at: number) => {
    if (waiting.size >= MAX_TRACKED) {
      const oldest = waiting.keys().next().value;
      if (oldest !== undefined) waiting.delete(oldest);
    }
    waiting.set(key, at);
  };
  const endWait = (key: string, kind: string, at: number) => {
    const start = waiting.get(key);
    waiting.delete(key);
    if (start !== undefined && at >= start) lockWait.observe({ kind }, (at - start) / 1000);
  };

  const observeLatency = async (jobId: string) => {
    const row = await baton.store.getJob(jobId);
    const completed = row?.history.findLast((h) => h.state === 'completed');
    const done = row?.history.findLast((h) => h.state === 'followedUp');
    if (completed && done) {
      latency.observe(Math.max(0, Date.parse(done.at) - Date.parse(completed.at)) / 1000);
    }
  };

  const onFrame = (frame: FeedFrame) => {
    const at = Date.parse(frame.at);
    if (frame.type === 'job.state' && frame.jobId) {
      const state = frame.data['state'];
      const key = `job:${frame.jobId}`;
      if (typeof state === 'string') {
        moveJob(frame.jobId, state);
        const outcome = frame.data['outcome'];
        if (state === 'completed' && typeof outcome === 'string') finished.inc({ outcome });
        if (state === 'cancelled') finished.inc({ outcome: 'cancelled' });
        if ((FINAL_STATES as readonly string[]).includes(state)) ended.inc({ state });
      }
      if (state === 'awaitingIdleSession') track(key, at);
      else if (state === 'continuing') endWait(key, 'followUp', at);
      else if (state === 'followedUp' || state === 'failed') {
        waiting.delete(key);
        const n = frame.data['attempts'];
        if (typeof n === 'number') attempts.observe({ result: state }, n);
        if (state === 'followedUp') void observeLatency(frame.jobId).catch(() => undefined);
      } else if (state === 'cancelled' || state === 'skipped') waiting.delete(key);
    } else if (frame.type === 'message.queued' && frame.turnId) {
      // A live turn waits for the lock from the moment its message is accepted.
      track(`turn:${frame.turnId}`, at);
    } else if (frame.type === 'turn.started' && frame.turnId) {
      endWait(`turn:${frame.turnId}`, 'live', at);
    } else if (frame.type === 'turn.finished' && frame.turnId) {
      waiting.delete(`turn:${frame.turnId}`);
    }
  };
  const unsubscribes = [baton.feed.subscribeAll((_owner, frame) => onFrame(frame))];

  return {
    registry,
    feedClients,
    slowConsumerCloses,
    httpRequests,
    httpDuration,
    close: () => {
      for (const unsubscribe of unsubscribes.splice(0)) unsubscribe();
    },
  };
}

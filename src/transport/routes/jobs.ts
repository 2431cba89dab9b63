import type { FastifyInstance } from 'fastify';
import type { Baton } from '../../runtime/system.js';
import {
  completeJobBody,
  jobOutputQuery,
  listJobsQuery,
  noQuery,
  parse,
  parseStartJobBody,
} from '../schemas.js';

interface IdParams {
  Params: { id: string };
}

/** Background jobs (SPEC §5). Routes validate, call the runtime, and nothing else. */
export function jobRoutes(app: FastifyInstance, baton: Baton): void {
  app.post<IdParams>('/v1/sessions/:id/jobs', async (request, reply) => {
    const body = parseStartJobBody(request.body);
    const job = await baton.startJob(request.owner, request.params.id, body);
    return reply
      .code(201)
      .header('location', `/v1/jobs/${encodeURIComponent(job.id)}`)
      .send(job);
  });

  app.post<IdParams>('/v1/jobs/:id/complete', async (request) => {
    const body = parse(completeJobBody, request.body);
    return baton.completeJob(request.owner, request.params.id, body);
  });

  app.post<IdParams>('/v1/jobs/:id/cancel', async (request) =>
    baton.cancelJob(request.owner, request.params.id),
  );

  app.post<IdParams>('/v1/jobs/:id/heartbeat', async (request) =>
    baton.heartbeatJob(request.owner, request.params.id),
  );

  app.post<IdParams>('/v1/jobs/:id/retry', async (request) =>
    baton.retryJob(request.owner, request.params.id),
  );

  app.get<IdParams>('/v1/jobs/:id', async (request) => {
    parse(noQuery, request.query ?? {});
    return baton.getJob(request.owner, request.params.id);
  });

  app.get<IdParams>('/v1/jobs/:id/output', async (request) => {
    const query = parse(jobOutputQuery, request.query ?? {});
    return baton.jobOutput(request.owner, request.params.id, query.since ?? 0);
  });

  app.get('/v1/jobs', async (request) => {
    // An empty parameter (`?state=`, as a form sends it) means no filter.
    const raw = Object.entries((request.query ?? {}) as Record<string, unknown>).filter(
      ([, value]) => value !== '',
    );
    const query = parse(listJobsQuery, Object.fromEntries(raw));
    return { jobs: await baton.listJobs(request.owner, query) };
  });
}

import type { FastifyInstance } from 'fastify';
import type { Baton } from '../../runtime/system.js';
import { createSessionBody, noQuery, parse, sendMessageBody } from '../schemas.js';

interface IdParams {
  Params: { id: string };
}

/** Sessions and their messages (SPEC §5). Routes validate, call the runtime, and nothing else. */
export function sessionRoutes(app: FastifyInstance, baton: Baton): void {
  app.post('/v1/sessions', async (request, reply) => {
    // A bodyless POST creates an untitled session; an explicit `null` is still a bad body.
    const body = parse(createSessionBody, request.body === undefined ? {} : request.body);
    const session = await baton.createSession(request.owner, body);
    return reply
      .code(201)
      .header('location', `/v1/sessions/${encodeURIComponent(session.id)}`)
      .send(session);
  });

  app.get('/v1/sessions', async (request) => {
    parse(noQuery, request.query ?? {});
    return { sessions: await baton.listSessions(request.owner) };
  });

  app.get<IdParams>('/v1/sessions/:id', async (request) => {
    parse(noQuery, request.query ?? {});
    return baton.getSession(request.owner, request.params.id);
  });

  app.delete<IdParams>('/v1/sessions/:id', async (request, reply) => {
    await baton.deleteSession(request.owner, request.params.id);
    return reply.code(204).send();
  });

  app.get<IdParams>('/v1/sessions/:id/messages', async (request) => {
    parse(noQuery, request.query ?? {});
    return { messages: await baton.listMessages(request.owner, request.params.id) };
  });

  app.post<IdParams>('/v1/sessions/:id/messages', async (request, reply) => {
    const { content, onBusy } = parse(sendMessageBody, request.body);
    const turn = await baton.sendMessage(request.owner, request.params.id, content, { onBusy });
    return reply.code(202).send(turn);
  });
}

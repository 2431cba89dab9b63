/**
 * The OpenAPI 3.1 description served at `GET /v1/openapi.json`. Request
 * bodies are generated from the same zod schemas the routes validate with,
 * so the document cannot drift from what the server accepts.
 */

import { z } from 'zod';
import { API_ERROR_CODES } from './errors.js';
import {
  commandJobBody,
  completeJobBody,
  createSessionBody,
  externalJobBody,
  JOB_STATES,
  sendMessageBody,
} from './schemas.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input' }) as Json;
  return rest;
}

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string): Json => ({ type: [type, 'null'] });
const iso = { type: 'string', format: 'date-time' };

const SCHEMAS: Json = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { enum: [...API_ERROR_CODES] }, message: { type: 'string' } },
      },
    },
  },
  Lock: {
    type: 'object',
    required: ['lock', 'holder', 'queue'],
    properties: {
      lock: { enum: ['idle', 'busy'] },
      holder: {
        oneOf: [
          { type: 'null' },
          {
            type: 'object',
            required: ['kind', 'id', 'since'],
            properties: {
              kind: { enum: ['live', 'followUp'] },
              id: { type: 'string' },
              since: iso,
            },
          },
        ],
      },
      queue: {
        type: 'array',
        items: {
          type: 'object',
          properties: { kind: { enum: ['live', 'followUp'] }, id: { type: 'string' } },
        },
      },
    },
  },
  Session: {
    type: 'object',
    required: ['id', 'owner', 'title', 'createdAt'],
    properties: {
      id: { type: 'string' },
      owner: { type: 'string' },
      title: { type: 'string' },
      systemPrompt: nullable('string'),
      createdAt: iso,
      lock: ref('Lock'),
    },
  },
  Message: {
    type: 'object',
    required: ['id', 'sessionId', 'role', 'content', 'metadata', 'createdAt'],
    properties: {
      id: { type: 'string' },
      sessionId: { type: 'string' },
      role: { enum: ['user', 'assistant', 'system'] },
      content: { type: 'string' },
      metadata: { type: 'object' },
      createdAt: iso,
      queued: {
        const: true,
        description:
          'a user message waiting for its turn; it enters the history when the turn starts',
      },
    },
  },
  Job: {
    type: 'object',
    required: ['id', 'sessionId', 'command', 'state', 'outcome', 'exitCode', 'attempts', 'output'],
    properties: {
      id: { type: 'string' },
      sessionId: { type: 'string' },
      command: nullable('string'),
      name: nullable('string'),
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      external: { type: 'boolean' },
      state: { enum: [...JOB_STATES] },
      outcome: { enum: ['succeeded', 'failed', 'timedOut', 'lost', 'cancelled', null] },
      exitCode: nullable('integer'),
      attempts: { type: 'integer' },
      output: { type: 'string', description: 'capped tail of the output' },
      createdAt: iso,
      finishedAt: { ...iso, type: ['string', 'null'] },
      followedUpAt: { ...iso, type: ['string', 'null'] },
      history: {
        type: 'array',
        items: { type: 'object', properties: { state: { type: 'string' }, at: iso } },
      },
      why: { type: 'string', description: 'what the job waits for, in words' },
    },
  },
  JobOutput: {
    type: 'object',
    required: ['jobId', 'state', 'output', 'since', 'next', 'size', 'source', 'done'],
    properties: {
      jobId: { type: 'string' },
      state: { enum: [...JOB_STATES] },
      output: { type: 'string', description: 'the output from byte `since` to byte `next`' },
      since: { type: 'integer' },
      next: { type: 'integer', description: 'where the following read starts' },
      size: { type: 'integer', description: 'bytes of output so far' },
      source: {
        enum: ['log', 'stored'],
        description: "log: the job's output file; stored: the capped output kept with the job",
      },
      done: { type: 'boolean', description: 'the job has finished and nothing more will come' },
    },
  },
  CreateSession: jsonSchema(createSessionBody),
  SendMessage: jsonSchema(sendMessageBody),
  StartJob: { oneOf: [jsonSchema(commandJobBody), jsonSchema(externalJobBody)] },
  CompleteJob: jsonSchema(completeJobBody),
};

const errors = (...statuses: number[]): Json =>
  Object.fromEntries(
    statuses.map((s) => [
      String(s),
      { description: 'error', content: { 'application/json': { schema: ref('Error') } } },
    ]),
  );

const ok = (status: number, schema: Json | null, description = 'ok'): Json => ({
  [String(status)]: schema
    ? { description, content: { 'application/json': { schema } } }
    : { description },
});

const body = (name: string, required = true): Json => ({
  required,
  content: { 'application/json': { schema: ref(name) } },
});

const idParam = (what: string): Json => ({
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: `${what} id`,
});

const listOf = (key: string, item: string): Json => ({
  type: 'object',
  required: [key],
  properties: { [key]: { type: 'array', items: ref(item) } },
});

/** Builds the document; `version` is the package version. */
export function openApiDocument(version: string): Json {
  const authed = (op: Json): Json => ({ security: [{ bearer: [] }], ...op });
  return {
    openapi: '3.1.0',
    info: {
      title: 'Baton',
      version,
      description:
        'Makes an AI agent continue its work when a background job it started finishes. ' +
        'The event feed is a WebSocket at GET /v1/events?token=…&since=…&sessionId=….',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: SCHEMAS,
    },
    paths: {
      '/healthz': { get: { summary: 'liveness', responses: ok(200, { type: 'object' }) } },
      '/v1/sessions': {
        post: authed({
          summary: 'create a session',
          requestBody: body('CreateSession', false),
          responses: { ...ok(201, ref('Session')), ...errors(400, 401, 413, 415) },
        }),
        get: authed({
          summary: 'list sessions',
          responses: { ...ok(200, listOf('sessions', 'Session')), ...errors(401) },
        }),
      },
      '/v1/sessions/{id}': {
        parameters: [idParam('session')],
        get: authed({
          summary: 'a session with its lock',
          responses: { ...ok(200, ref('Session')), ...errors(401, 404) },
        }),
        delete: authed({
          summary: 'delete a session; its waiting jobs end skipped',
          responses: { ...ok(204, null, 'deleted'), ...errors(401, 404) },
        }),
      },
      '/v1/sessions/{id}/messages': {
        parameters: [idParam('session')],
        get: authed({
          summary: 'messages in history order, then the queued ones',
          responses: { ...ok(200, listOf('messages', 'Message')), ...errors(401, 404) },
        }),
        post: authed({
          summary:
            'queue a user message for a live turn (it enters the history when the turn starts)',
          requestBody: body('SendMessage'),
          responses: {
            ...ok(202, {
              type: 'object',
              required: ['turnId', 'message'],
              properties: { turnId: { type: 'string' }, message: ref('Message') },
            }),
            ...errors(400, 401, 404, 409, 413, 415),
          },
        }),
      },
      '/v1/sessions/{id}/jobs': {
        parameters: [idParam('session')],
        post: authed({
          summary: 'start a background job (a command here, or an external job)',
          requestBody: body('StartJob'),
          responses: { ...ok(201, ref('Job')), ...errors(400, 401, 404, 413, 415) },
        }),
      },
      '/v1/jobs': {
        get: authed({
          summary: 'list jobs',
          parameters: [
            { name: 'sessionId', in: 'query', schema: { type: 'string' } },
            { name: 'state', in: 'query', schema: { enum: [...JOB_STATES] } },
            {
              name: 'label',
              in: 'query',
              description: 'key (has the label) or key=value; repeat for several, all must match',
              schema: { type: 'array', items: { type: 'string' } },
              style: 'form',
              explode: true,
            },
          ],
          responses: { ...ok(200, listOf('jobs', 'Job')), ...errors(400, 401, 404) },
        }),
      },
      '/v1/jobs/{id}': {
        parameters: [idParam('job')],
        get: authed({
          summary: 'a job',
          responses: { ...ok(200, ref('Job')), ...errors(401, 404) },
        }),
      },
      '/v1/jobs/{id}/output': {
        parameters: [idParam('job')],
        get: authed({
          summary: "a job's output from a byte offset (at most 64 KiB), while it runs and after",
          parameters: [{ name: 'since', in: 'query', schema: { type: 'integer', minimum: 0 } }],
          responses: { ...ok(200, ref('JobOutput')), ...errors(400, 401, 404) },
        }),
      },
      '/v1/jobs/{id}/complete': {
        parameters: [idParam('job')],
        post: authed({
          summary: 'finish an external job (a second call is 409)',
          requestBody: body('CompleteJob'),
          responses: { ...ok(200, ref('Job')), ...errors(400, 401, 404, 409) },
        }),
      },
      '/v1/jobs/{id}/cancel': {
        parameters: [idParam('job')],
        post: authed({
          summary: 'cancel a job; no follow-up',
          responses: { ...ok(200, ref('Job')), ...errors(401, 404, 409) },
        }),
      },
      '/v1/jobs/{id}/heartbeat': {
        parameters: [idParam('job')],
        post: authed({
          summary:
            'a sign of life from an external job; one given heartbeatS that sends none in time ends lost',
          responses: { ...ok(200, ref('Job')), ...errors(401, 404, 409) },
        }),
      },
      '/v1/jobs/{id}/retry': {
        parameters: [idParam('job')],
        post: authed({
          summary: 're-drive a failed job',
          responses: { ...ok(200, ref('Job')), ...errors(401, 404, 409) },
        }),
      },
      '/v1/machines': {
        get: authed({
          summary: 'the XState machine definitions, for Stately tools',
          responses: { ...ok(200, { type: 'object' }), ...errors(401, 404) },
        }),
      },
      '/v1/info': {
        get: authed({
          summary: 'version, agent, job sandbox and inspector address',
          responses: { ...ok(200, { type: 'object' }), ...errors(401) },
        }),
      },
      '/v1/events': {
        get: {
          summary: 'WebSocket event feed (upgrade); a plain GET is 426',
          parameters: [
            { name: 'token', in: 'query', required: true, schema: { type: 'string' } },
            { name: 'since', in: 'query', schema: { type: 'integer', minimum: 0 } },
            { name: 'sessionId', in: 'query', schema: { type: 'string' } },
          ],
          responses: { '101': { description: 'switching protocols' }, ...errors(400, 401, 426) },
        },
      },
      '/metrics': {
        get: authed({
          summary: 'Prometheus metrics',
          responses: {
            '200': { description: 'text exposition format', content: { 'text/plain': {} } },
            ...errors(401),
          },
        }),
      },
    },
  };
}

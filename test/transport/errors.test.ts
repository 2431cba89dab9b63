import { describe, expect, it, vi } from 'vitest';
import { BatonError, ERROR_CODES } from '../../src/runtime/errors.js';
import { StoreWriteError } from '../../src/runtime/store/store.js';
import {
  API_ERROR_CODES,
  ERROR_TABLE,
  toErrorReply,
  TRANSPORT_ERROR_CODES,
  TransportError,
} from '../../src/transport/errors.js';

describe('ERROR_TABLE', () => {
  it('has a row for every runtime code and every transport code, and nothing else', () => {
    const expected = [...ERROR_CODES, ...TRANSPORT_ERROR_CODES].sort();
    expect(Object.keys(ERROR_TABLE).sort()).toEqual(expected);
    expect([...API_ERROR_CODES].sort()).toEqual(expected);
  });

  it('maps every code to a 4xx or 5xx status and a valid WebSocket close code', () => {
    for (const [code, { status, wsClose }] of Object.entries(ERROR_TABLE)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      // 1000–1015 are protocol codes a server may send; 4000–4999 are private.
      const valid =
        (wsClose >= 1001 && wsClose <= 1014 && wsClose !== 1005 && wsClose !== 1006) ||
        (wsClose >= 4000 && wsClose <= 4999);
      expect(valid, `${code} → ${wsClose}`).toBe(true);
    }
  });

  it('holds the statuses the API promises', () => {
    expect(ERROR_TABLE.invalid_request.status).toBe(400);
    expect(ERROR_TABLE.invalid_json.status).toBe(400);
    expect(ERROR_TABLE.payload_too_large.status).toBe(413);
    expect(ERROR_TABLE.unauthorized).toEqual({ status: 401, wsClose: 4401 });
    expect(ERROR_TABLE.not_found.status).toBe(404);
    expect(ERROR_TABLE.job_finished.status).toBe(409);
    expect(ERROR_TABLE.job_not_failed.status).toBe(409);
    expect(ERROR_TABLE.job_not_external.status).toBe(409);
    expect(ERROR_TABLE.shutting_down.status).toBe(503);
    expect(ERROR_TABLE.store_unavailable.status).toBe(503);
    expect(ERROR_TABLE.rate_limited.status).toBe(429);
    expect(ERROR_TABLE.internal.status).toBe(500);
    expect(ERROR_TABLE.slow_consumer.wsClose).toBe(4008);
    expect(ERROR_TABLE.since_pruned).toEqual({ status: 410, wsClose: 4410 });
  });
});

describe('toErrorReply', () => {
  it('keeps the code and message of a domain error', () => {
    const reply = toErrorReply(new BatonError('job_finished', 'job j_1 was already completed'));
    expect(reply).toEqual({
      status: 409,
      body: { error: { code: 'job_finished', message: 'job j_1 was already completed' } },
    });
  });

  it('keeps the code of a transport error', () => {
    expect(toErrorReply(new TransportError('unauthorized', 'no token')).status).toBe(401);
  });

  it('answers store_unavailable when the store cannot write', () => {
    const reply = toErrorReply(new StoreWriteError('SQLITE_FULL: database or disk is full'));
    expect(reply.status).toBe(503);
    expect(reply.body.error.code).toBe('store_unavailable');
    expect(reply.body.error.message).not.toContain('SQLITE');
  });

  it('answers 500 internal with a generic message for an unknown error, and logs it', () => {
    const logger = { error: vi.fn() };
    const secret = new Error('SELECT * FROM secrets failed at /srv/app.js:12');
    const reply = toErrorReply(secret, logger);
    expect(reply).toEqual({
      status: 500,
      body: { error: { code: 'internal', message: 'internal error' } },
    });
    expect(logger.error).toHaveBeenCalledWith({ err: secret }, 'unexpected error');
  });

  it('answers a thrown non-error value as internal', () => {
    expect(toErrorReply('boom').body.error.code).toBe('internal');
  });
});

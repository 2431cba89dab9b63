import { describe, expect, it } from 'vitest';
import { settle, unwrap } from '../../src/runtime/commands.js';
import { BatonError } from '../../src/runtime/errors.js';
import { SessionGoneError } from '../../src/runtime/follow-up.js';
import {
  DuplicateFollowUpError,
  FencedError,
  StoreConflictError,
  StoreWriteError,
} from '../../src/runtime/store/store.js';
import { toErrorReply } from '../../src/transport/errors.js';

/** What a client gets when the call ran on the session's owner and came back as a command result. */
async function forwarded(error: unknown) {
  const result = await settle(() => Promise.reject(error));
  // A result crosses processes as JSON.
  const crossed = JSON.parse(JSON.stringify(result));
  try {
    unwrap(crossed);
  } catch (thrown) {
    return toErrorReply(thrown);
  }
  throw new Error('a failed command came back as a success');
}

describe('one error mapping for local and forwarded calls', () => {
  const errors: [string, unknown][] = [
    ['a domain error', new BatonError('job_finished', 'job j_1 was already completed')],
    ['a version conflict', new StoreConflictError('j_1', 3)],
    ['a fenced write', new FencedError({ sessionId: 's_1', epoch: 2 })],
    ['a second follow-up', new DuplicateFollowUpError('j_1')],
    ['a deleted session', new SessionGoneError('session s_1 was deleted')],
    ['a store that cannot write', new StoreWriteError('PostgreSQL store cannot write: ECONNRESET')],
    ['an unexpected error', new Error('SELECT * FROM secrets failed')],
  ];

  it.each(errors)('answers %s with the same code, status and message', async (_, error) => {
    expect(await forwarded(error)).toEqual(toErrorReply(error));
  });

  it('answers a conflict 409 and a deleted session session_deleted, whichever process ran it', async () => {
    expect((await forwarded(new StoreConflictError('j_1', 3))).status).toBe(409);
    expect((await forwarded(new SessionGoneError('gone'))).body.error.code).toBe('session_deleted');
  });

  it('never sends the store’s own words to a client', async () => {
    const reply = await forwarded(new StoreWriteError('PostgreSQL store cannot write: ECONNRESET'));
    expect(reply.body.error.code).toBe('store_unavailable');
    expect(reply.body.error.message).not.toContain('PostgreSQL');
  });
});

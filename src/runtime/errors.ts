/**
 * Domain errors with stable codes. The transport maps each code to an HTTP
 * status and a WebSocket close code in one table (`src/transport/errors.ts`).
 */
export const ERROR_CODES = [
  'invalid_request',
  'invalid_json',
  'payload_too_large',
  'unauthorized',
  'not_found',
  'session_deleted',
  'job_not_running',
  'job_not_failed',
  'job_finished',
  'job_not_external',
  // A message sent with onBusy "reject" while a turn or follow-up holds the session.
  'session_busy',
  // Another writer changed what the call was changing: read it again.
  'conflict',
  'shutting_down',
  'store_unavailable',
  'rate_limited',
  'internal',
  'since_pruned',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class BatonError extends Error {
  override readonly name = 'BatonError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function notFound(what: string, id: string): BatonError {
  return new BatonError('not_found', `${what} ${id} not found`);
}

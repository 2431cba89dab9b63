/**
 * The one table of error codes: each runtime {@link ErrorCode} and each code
 * the transport adds maps to an HTTP status and a WebSocket close code.
 * Every error a client sees is `{ "error": { "code", "message" } }`.
 */

import { errorOf, INTERNAL_MESSAGE } from '../runtime/commands.js';
import { ERROR_CODES, type ErrorCode } from '../runtime/errors.js';
import { StoreWriteError } from '../runtime/store/store.js';

/** Codes that only the transport raises (HTTP framing and the WebSocket feed). */
export const TRANSPORT_ERROR_CODES = [
  'unsupported_media_type',
  'upgrade_required',
  'slow_consumer',
] as const;

export type TransportErrorCode = (typeof TRANSPORT_ERROR_CODES)[number];

/** Every code a client can receive. */
export type ApiErrorCode = ErrorCode | TransportErrorCode;

/** Every code a client can receive, runtime codes first. */
export const API_ERROR_CODES: readonly ApiErrorCode[] = [...ERROR_CODES, ...TRANSPORT_ERROR_CODES];

/** How one code is answered over HTTP and over the WebSocket feed. */
export interface ErrorMapping {
  /** HTTP status (always 4xx or 5xx). */
  status: number;
  /** Close code when the error ends a WebSocket connection (4000 + status where no standard code fits). */
  wsClose: number;
}

/**
 * Code → HTTP status and WebSocket close code. Typed as a total record so
 * that a runtime code added without a row here fails to compile.
 *
 * `session_deleted` is 404: after a delete every read of the session is
 * already 404 `not_found`, so a write that races the delete reads the same way.
 * `slow_consumer` only ever closes a WebSocket (4008, like the standard 1008
 * policy violation); its HTTP status is there for completeness.
 * `since_pruned` is only ever an error frame of the feed, which stays open
 * (410 Gone: the events asked for no longer exist); its close code is unused.
 */
export const ERROR_TABLE: Readonly<Record<ApiErrorCode, ErrorMapping>> = {
  invalid_request: { status: 400, wsClose: 4400 },
  invalid_json: { status: 400, wsClose: 4400 },
  payload_too_large: { status: 413, wsClose: 1009 },
  unauthorized: { status: 401, wsClose: 4401 },
  not_found: { status: 404, wsClose: 4404 },
  session_deleted: { status: 404, wsClose: 4404 },
  job_not_running: { status: 409, wsClose: 4409 },
  job_not_failed: { status: 409, wsClose: 4409 },
  job_finished: { status: 409, wsClose: 4409 },
  job_not_external: { status: 409, wsClose: 4409 },
  session_busy: { status: 409, wsClose: 4409 },
  conflict: { status: 409, wsClose: 4409 },
  shutting_down: { status: 503, wsClose: 1001 },
  store_unavailable: { status: 503, wsClose: 1011 },
  rate_limited: { status: 429, wsClose: 4429 },
  internal: { status: 500, wsClose: 1011 },
  since_pruned: { status: 410, wsClose: 4410 },
  unsupported_media_type: { status: 415, wsClose: 1003 },
  upgrade_required: { status: 426, wsClose: 4426 },
  slow_consumer: { status: 503, wsClose: 4008 },
};

/** An error raised by the transport itself, with a code from {@link ERROR_TABLE}. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The JSON body of every error answer (SPEC §5). */
export interface ErrorBody {
  error: { code: ApiErrorCode; message: string };
}

/** An error ready to send: status plus body. */
export interface ErrorReply {
  status: number;
  body: ErrorBody;
}

/** Where unexpected errors are reported; pino's logger fits. */
export interface ErrorLogger {
  error(obj: object, msg?: string): void;
}

// Fastify's own framing errors, by their `code`. Anything else it throws with
// a 4xx status is a malformed request.
const FASTIFY_CODES: Readonly<Record<string, ApiErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_NOT_FOUND: 'not_found',
  FST_ERR_BAD_URL: 'invalid_request',
  // An id longer than any id the service makes cannot name anything.
  FST_ERR_MAX_PARAM_LENGTH: 'not_found',
};

const FASTIFY_MESSAGES: Readonly<Partial<Record<ApiErrorCode, string>>> = {
  payload_too_large: 'the request body is too large',
  invalid_json: 'the request body is not valid JSON',
  unsupported_media_type: 'send the body as application/json',
  not_found: 'not found',
};

/** True when `code` is one of the codes of {@link ERROR_TABLE}. */
export function isApiErrorCode(code: unknown): code is ApiErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code);
}

/** Builds the reply for a known code. */
export function errorReply(code: ApiErrorCode, message: string): ErrorReply {
  return { status: ERROR_TABLE[code].status, body: { error: { code, message } } };
}

/**
 * Turns anything thrown into an answer. Transport errors keep their code and
 * message; every runtime error is classified by {@link errorOf}, the same
 * function that classifies the error of a call forwarded to another process,
 * so both answer alike; anything unexpected is logged and answered `internal`
 * with a generic message, so that no stack or SQL text reaches a client.
 */
export function toErrorReply(error: unknown, logger?: ErrorLogger): ErrorReply {
  if (error instanceof TransportError) return errorReply(error.code, error.message);
  const known = errorOf(error);
  if (known) {
    if (error instanceof StoreWriteError) logger?.error({ err: error }, 'store unavailable');
    return errorReply(known.code, known.message);
  }
  const fastify = fastifyCode(error);
  if (fastify) return errorReply(fastify, FASTIFY_MESSAGES[fastify] ?? messageOf(error));
  logger?.error({ err: error }, 'unexpected error');
  return errorReply('internal', INTERNAL_MESSAGE);
}

function fastifyCode(error: unknown): ApiErrorCode | null {
  if (!(error instanceof Error)) return null;
  const { code, statusCode } = error as Error & { code?: unknown; statusCode?: unknown };
  if (typeof code === 'string' && code.startsWith('FST_')) {
    const mapped = FASTIFY_CODES[code];
    if (mapped) return mapped;
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return 'invalid_request';
  }
  return null;
}

function messageOf(error: unknown): string {
  return error instanceof Error && error.message ? error.message : 'bad request';
}

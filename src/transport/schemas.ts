/**
 * Request schemas of the HTTP API (SPEC §5), in zod. Bodies are strict
 * objects: an unknown field is a mistake the client should hear about (a
 * misspelt `timeoutS` silently ignored would run a job for an hour).
 */

import { z } from 'zod';
import { TransportError } from './errors.js';
import { JOB_STATES } from '../machines/job.machine.js';

/** `command` of a job, in characters. */
export const MAX_COMMAND_CHARS = 16 * 1024;
/** `content` of a message, in characters. */
export const MAX_MESSAGE_CHARS = 256 * 1024;
/** `timeoutS` of a job: seven days. */
export const MAX_TIMEOUT_S = 7 * 24 * 3600;
/** `output` of a completed external job, in characters (the runtime keeps a capped head and tail). */
export const MAX_OUTPUT_CHARS = 512 * 1024;

/** The top-level states of the job machine (SPEC §2), for `GET /v1/jobs?state=`. */
export { JOB_STATES };

const noNul = (s: string) => !s.includes('\u0000');
const notBlank = (s: string) => s.trim().length > 0;

export const createSessionBody = z.strictObject({
  title: z
    .string({ error: 'title must be a string' })
    .max(200, { error: 'title must be at most 200 characters' })
    .optional(),
  systemPrompt: z
    .string({ error: 'systemPrompt must be a string' })
    .max(MAX_MESSAGE_CHARS, {
      error: `systemPrompt must be at most ${MAX_MESSAGE_CHARS} characters`,
    })
    .optional(),
});

export const sendMessageBody = z.strictObject({
  content: z
    .string({ error: 'content must be a string' })
    .max(MAX_MESSAGE_CHARS, { error: `content must be at most ${MAX_MESSAGE_CHARS} characters` })
    .refine(notBlank, { error: 'content must not be empty' }),
  // What to do when the session is busy (SPEC §3a): wait queued, or refuse.
  onBusy: z
    .enum(['enqueue', 'reject'], { error: 'onBusy must be "enqueue" or "reject"' })
    .optional(),
});

/** A job's deadline in seconds, for commands and external jobs alike. */
const timeoutS = z
  .number({ error: 'timeoutS must be a number of seconds' })
  .int({ error: 'timeoutS must be a whole number of seconds' })
  .positive({ error: 'timeoutS must be positive' })
  .max(MAX_TIMEOUT_S, { error: `timeoutS must be at most ${MAX_TIMEOUT_S} (7 days)` })
  .optional();

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,62}$/;
const MAX_LABELS = 16;

/** A job's name, for people. */
const jobName = z
  .string({ error: 'name must be a string' })
  .max(200, { error: 'name must be at most 200 characters' })
  .optional();

/** Small tags to find jobs by: at most 16, keys like `team` or `app.kubernetes.io/name`. */
const labels = z
  .record(
    z.string().regex(LABEL_KEY, {
      error: 'label keys are 1 to 63 letters, digits and . _ / - (starting with a letter or digit)',
    }),
    z
      .string({ error: 'label values must be strings' })
      .max(200, { error: 'label values must be at most 200 characters' }),
    { error: 'labels must be an object of strings' },
  )
  .refine((value) => Object.keys(value).length <= MAX_LABELS, {
    error: `at most ${MAX_LABELS} labels`,
  })
  .optional();

export const commandJobBody = z.strictObject({
  command: z
    .string({ error: 'command must be a string' })
    .max(MAX_COMMAND_CHARS, { error: `command must be at most ${MAX_COMMAND_CHARS} characters` })
    .refine(notBlank, { error: 'command must not be empty' })
    .refine(noNul, { error: 'command must not contain NUL characters' }),
  timeoutS,
  cwd: z
    .string({ error: 'cwd must be a string' })
    .min(1, { error: 'cwd must not be empty' })
    .max(4096, { error: 'cwd must be at most 4096 characters' })
    .refine(noNul, { error: 'cwd must not contain NUL characters' })
    .optional(),
  name: jobName,
  labels,
});

export const externalJobBody = z.strictObject({
  external: z.literal(true, { error: 'external must be true' }),
  name: jobName,
  labels,
  timeoutS,
  heartbeatS: z
    .number({ error: 'heartbeatS must be a whole number of seconds' })
    .int({ error: 'heartbeatS must be a whole number of seconds' })
    .min(1, { error: 'heartbeatS must be at least 1' })
    .max(86_400, { error: 'heartbeatS must be at most 86400 (1 day)' })
    .optional(),
});

export const completeJobBody = z.strictObject({
  exitCode: z
    .number({ error: 'exitCode must be an integer' })
    .int({ error: 'exitCode must be an integer' })
    .min(-2147483648, { error: 'exitCode is out of range' })
    .max(2147483647, { error: 'exitCode is out of range' }),
  output: z
    .string({ error: 'output must be a string' })
    .max(MAX_OUTPUT_CHARS, { error: `output must be at most ${MAX_OUTPUT_CHARS} characters` })
    .optional(),
  outcome: z
    .enum(['succeeded', 'failed', 'timedOut', 'lost'], {
      error: 'outcome must be one of succeeded, failed, timedOut, lost',
    })
    .optional(),
});

/** `label=key` (has the label) or `label=key=value`, repeatable: every one must match. */
const labelFilter = z
  .union([z.string(), z.array(z.string())])
  .transform((value) => (Array.isArray(value) ? value : [value]))
  .pipe(
    z
      .array(
        z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,62}(=.{0,200})?$/s, {
          error: 'label must be key or key=value',
        }),
      )
      .max(MAX_LABELS, { error: `at most ${MAX_LABELS} label filters` }),
  )
  .transform((items) =>
    items.map((item) => {
      const eq = item.indexOf('=');
      return eq === -1
        ? { key: item, value: null }
        : { key: item.slice(0, eq), value: item.slice(eq + 1) };
    }),
  );

/** For the routes that take no query parameters: one sent by mistake is an error, not ignored. */
export const noQuery = z.strictObject({});

export const listJobsQuery = z.strictObject({
  sessionId: z.string().max(100).optional(),
  label: labelFilter.optional(),
  state: z.enum(JOB_STATES, { error: `state must be one of ${JOB_STATES.join(', ')}` }).optional(),
});

export const jobOutputQuery = z.strictObject({
  since: z
    .string()
    .regex(/^\d{1,15}$/, { error: 'since must be a byte offset (a whole number)' })
    .transform(Number)
    .optional(),
});

/** `POST …/jobs` takes either a command or an external job; the `external` key decides which. */
export function parseStartJobBody(body: unknown) {
  if (typeof body === 'object' && body !== null && 'external' in body) {
    return parse(externalJobBody, body);
  }
  return parse(commandJobBody, body);
}

/**
 * Validates `value` or throws `invalid_request` naming every problem, e.g.
 * `command: command must not be empty; unknown field "foo"`.
 */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(wellFormedFields(value));
  if (result.success) return result.data;
  throw new TransportError('invalid_request', describeIssues(result.error.issues));
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * The body with each string field made well-formed: a lone surrogate, which
 * JSON can carry as an escape but UTF-8 cannot store, becomes U+FFFD, as
 * invalid UTF-8 bytes in a body already do. So the answer, the feed and every
 * later read show the same text. Bodies are flat: one level is enough.
 */
function wellFormedFields(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = typeof field === 'string' ? field.replace(LONE_SURROGATE, '\ufffd') : field;
  }
  return out;
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys
          .map((k) => JSON.stringify(k))
          .join(', ')}`;
      }
      if (issue.path.length === 0 && issue.code === 'invalid_type') {
        return 'the body must be a JSON object';
      }
      return issue.message;
    })
    .join('; ');
}

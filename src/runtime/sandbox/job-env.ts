/**
 * The environment of a job: never the server's. The server's environment holds
 * every owner's token and the model key, so a job starts from nothing and gets
 * PATH, HOME, LANG, TERM and only the variables the operator names.
 */
import type { SandboxKind } from './sandbox-config.js';

/** PATH inside the sandbox, where only the system's directories exist. */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the sandbox itself; an operator's value would only confuse. */
const RESERVED = new Set(['PATH', 'HOME']);
/** Names that hold the server's secrets whatever their value. */
const SECRET_NAMES = new Set(['OPENAI_API_KEY']);

/**
 * The variables a job runs with. `home` is the job's view of its owner's work
 * directory. Under `none` the server's PATH is kept (the job runs on the
 * host, where the server's tools live); under `bwrap` only system paths exist.
 */
export function jobEnvironment(
  kind: SandboxKind,
  home: string,
  extra: Readonly<Record<string, string>>,
  serverEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  return {
    LANG: serverEnv['LANG'] ?? 'C.UTF-8',
    TERM: 'dumb',
    ...extra,
    PATH: kind === 'bwrap' ? SANDBOX_PATH : (serverEnv['PATH'] ?? SANDBOX_PATH),
    HOME: home,
  };
}

/** A `--job-env` value the service refuses to start with. */
export class JobEnvError extends Error {
  override readonly name = 'JobEnvError';
}

/**
 * Reads `--job-env` entries: `NAME` takes the server's value, `NAME=VALUE`
 * sets one. Refuses names that are not variable names, PATH and HOME,
 * `BATON_*` and the model key, a named variable the server does not have, and
 * any value that holds one of `secrets` (tokens, the agent key).
 */
export function parseJobEnv(
  entries: readonly string[],
  secrets: readonly string[],
  serverEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const name = eq === -1 ? entry.trim() : entry.slice(0, eq).trim();
    const value = eq === -1 ? serverEnv[name] : entry.slice(eq + 1);
    if (!NAME.test(name)) {
      throw new JobEnvError(`--job-env ${JSON.stringify(entry)} is not NAME or NAME=VALUE`);
    }
    if (RESERVED.has(name)) {
      throw new JobEnvError(`--job-env ${name}: the sandbox sets ${name} itself`);
    }
    if (name.startsWith('BATON_') || SECRET_NAMES.has(name)) {
      throw new JobEnvError(`--job-env ${name}: the server's own secrets never reach a job`);
    }
    if (value === undefined) {
      throw new JobEnvError(`--job-env ${name}: the server has no such variable`);
    }
    if (secrets.some((secret) => secret.length > 0 && value.includes(secret))) {
      throw new JobEnvError(`--job-env ${name}: its value holds a token or the agent key`);
    }
    env[name] = value;
  }
  return env;
}

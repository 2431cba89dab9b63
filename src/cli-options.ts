/**
 * The options of `baton serve` (SPEC §4): each a flag and an environment
 * variable, parsed and checked before anything starts.
 */

import { InvalidArgumentError, Option } from 'commander';
import { LOG_LEVELS, type LogLevel } from './logger.js';
import type { AgentKind } from './runtime/agents/create-agent.js';

/** `baton serve`'s options once parsed. */
export interface ServeOptions {
  port: number;
  host: string;
  data: string;
  store: 'sqlite' | 'postgres';
  databaseUrl?: string | undefined;
  agent?: AgentKind | undefined;
  agentUrl?: string | undefined;
  agentModel?: string | undefined;
  agentKey?: string | undefined;
  token?: string | undefined;
  /** `--inspect` alone: the default inspector address; `--inspect URL`: that one. */
  inspect?: boolean | string | undefined;
  pretty?: boolean | undefined;
  logLevel: LogLevel;
  pgSchema: string;
  metricsToken?: string | undefined;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  agentTimeoutS: number;
  jobTimeoutS: number;
  maxRunningJobs: number;
  maxJobsPerOwner: number;
  maxJobsPerSession: number;
  heartbeatS: number;
  retainDays: number;
  sandbox?: 'bwrap' | 'none' | undefined;
  jobNetwork?: 'on' | 'off' | undefined;
  jobEnv: string[];
  jobCpuS: number;
  jobMemoryMb: number;
  jobProcesses: number;
  jobFileMb: number;
  jobRoPath: string[];
  workRoot?: string | undefined;
  workDir: string[];
}

/** Parses a whole number within bounds, for commander (flags and env values alike). */
export function wholeNumber(name: string, min: number, max: number) {
  return (value: string): number => {
    const text = value.trim();
    if (!/^-?\d+$/.test(text)) {
      throw new InvalidArgumentError(`${name} must be a whole number, got "${value}"`);
    }
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${value}`);
    }
    return n;
  };
}

function nonEmpty(name: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`${name} must not be empty`);
    return value.trim();
  };
}

function url(name: string, protocols: readonly string[]) {
  return (value: string): string => {
    let parsed: URL | null = null;
    try {
      parsed = new URL(value.trim());
    } catch {
      // Reported below.
    }
    if (!parsed || !protocols.includes(parsed.protocol)) {
      const kinds = protocols.map((p) => p.slice(0, -1)).join(' or ');
      throw new InvalidArgumentError(`${name} must be a ${kinds} URL, got "${value}"`);
    }
    return value.trim();
  };
}

const MAX_MS = 2 ** 31 - 1;

/**
 * A repeatable option: each use adds one value, and a value from the
 * environment variable is a comma-separated list (`--job-env` keeps a
 * `NAME=VALUE` whole, since a value may hold commas).
 */
function repeatable(name: string, splitEnv: (value: string) => boolean = () => true) {
  return (value: string, previous: string[] | undefined): string[] => {
    const parts = splitEnv(value) ? value.split(',') : [value];
    const items = parts.map((v) => v.trim()).filter((v) => v !== '');
    if (items.length === 0) throw new InvalidArgumentError(`${name} must not be empty`);
    return [...(previous ?? []), ...items];
  };
}

function ownerDir(value: string): void {
  const eq = value.indexOf('=');
  if (eq < 1 || eq === value.length - 1) {
    throw new InvalidArgumentError(`--work-dir takes OWNER=DIR, got "${value}"`);
  }
}

/** Every option of `baton serve`, with its environment variable and default. */
export function serveOptions(): Option[] {
  return [
    new Option('--port <n>', 'port to listen on (0: any free port)')
      .env('BATON_PORT')
      .default(8787)
      .argParser(wholeNumber('--port', 0, 65535)),
    new Option('--host <host>', 'address to listen on')
      .env('BATON_HOST')
      .default('127.0.0.1')
      .argParser(nonEmpty('--host')),
    new Option('--data <dir>', 'data directory (SQLite file, job files, generated token)')
      .env('BATON_DATA_DIR')
      .default('./.baton')
      .argParser(nonEmpty('--data')),
    new Option('--store <kind>', 'where state is kept')
      .env('BATON_STORE')
      .choices(['sqlite', 'postgres'])
      .default('sqlite'),
    new Option('--database-url <url>', 'PostgreSQL URL for --store postgres')
      .env('BATON_DATABASE_URL')
      .argParser(url('--database-url', ['postgres:', 'postgresql:'])),
    new Option('--agent <kind>', 'agent kind (default: openai with --agent-url, else offline)')
      .env('BATON_AGENT')
      .choices(['openai', 'sse', 'offline']),
    new Option('--agent-url <url>', 'OpenAI-compatible base URL, or the SSE endpoint')
      .env('BATON_AGENT_URL')
      .argParser(url('--agent-url', ['http:', 'https:'])),
    new Option('--agent-model <name>', 'model name')
      .env('BATON_AGENT_MODEL')
      .argParser(nonEmpty('--agent-model')),
    new Option('--agent-key <key>', 'API key (openai falls back to OPENAI_API_KEY)')
      .env('BATON_AGENT_KEY')
      .argParser(nonEmpty('--agent-key')),
    new Option(
      '--token <token>',
      'token of owner "default" (BATON_TOKENS="alice:tokA,bob:tokB" sets several)',
    )
      .env('BATON_TOKEN')
      .argParser(nonEmpty('--token')),
    new Option(
      '--inspect [url]',
      'connect every actor to the Stately inspector (default ws://localhost:8080)',
    ).env('BATON_INSPECT'),
    new Option('--pretty', 'human-readable logs instead of JSON lines').env('BATON_PRETTY'),
    new Option('--log-level <level>', 'least severe log level written')
      .env('BATON_LOG_LEVEL')
      .choices(LOG_LEVELS)
      .default('info'),
    new Option(
      '--metrics-token <token>',
      "token that reads GET /metrics (without it, only a single-owner server's token can)",
    )
      .env('BATON_METRICS_TOKEN')
      .argParser(nonEmpty('--metrics-token')),
    new Option('--pg-schema <name>', 'PostgreSQL schema holding the tables (--store postgres)')
      .env('BATON_PG_SCHEMA')
      .default('baton')
      .argParser(nonEmpty('--pg-schema')),
    new Option('--max-attempts <n>', 'agent attempts per follow-up before it fails')
      .env('BATON_MAX_ATTEMPTS')
      .default(5)
      .argParser(wholeNumber('--max-attempts', 1, 100)),
    new Option('--retry-base-ms <ms>', 'first retry delay (grows exponentially, with jitter)')
      .env('BATON_RETRY_BASE_MS')
      .default(2000)
      .argParser(wholeNumber('--retry-base-ms', 1, MAX_MS)),
    new Option('--retry-max-ms <ms>', 'longest retry delay')
      .env('BATON_RETRY_MAX_MS')
      .default(300_000)
      .argParser(wholeNumber('--retry-max-ms', 1, MAX_MS)),
    new Option('--agent-timeout-s <s>', "one agent attempt's deadline")
      .env('BATON_AGENT_TIMEOUT_S')
      .default(600)
      .argParser(wholeNumber('--agent-timeout-s', 1, 86_400)),
    new Option('--job-timeout-s <s>', 'timeout of a job that names none')
      .env('BATON_JOB_TIMEOUT_S')
      .default(3600)
      .argParser(wholeNumber('--job-timeout-s', 1, 7 * 86_400)),
    new Option('--max-running-jobs <n>', 'job processes running at once on this server (more wait)')
      .env('BATON_MAX_RUNNING_JOBS')
      .default(32)
      .argParser(wholeNumber('--max-running-jobs', 1, 10_000)),
    new Option('--max-jobs-per-owner <n>', 'job processes running at once per owner')
      .env('BATON_MAX_JOBS_PER_OWNER')
      .default(16)
      .argParser(wholeNumber('--max-jobs-per-owner', 1, 10_000)),
    new Option('--max-jobs-per-session <n>', 'job processes running at once per session')
      .env('BATON_MAX_JOBS_PER_SESSION')
      .default(8)
      .argParser(wholeNumber('--max-jobs-per-session', 1, 10_000)),
    new Option('--heartbeat-s <s>', 'WebSocket ping interval; clients that miss a pong are dropped')
      .env('BATON_HEARTBEAT_S')
      .default(30)
      .argParser(wholeNumber('--heartbeat-s', 1, 3600)),
    new Option(
      '--retain-days <n>',
      "days finished jobs' folders and feed events are kept (0: forever)",
    )
      .env('BATON_RETAIN_DAYS')
      .default(7)
      .argParser(wholeNumber('--retain-days', 0, 36_500)),
    new Option(
      '--sandbox <kind>',
      'what jobs run in (default: bwrap when it works; several owners need it or an explicit none)',
    )
      .env('BATON_SANDBOX')
      .choices(['bwrap', 'none']),
    new Option(
      '--job-network <on|off>',
      'whether jobs reach the network (default: off with several owners, else on)',
    )
      .env('BATON_JOB_NETWORK')
      .choices(['on', 'off']),
    new Option('--job-env <name>', 'pass this server variable (or NAME=VALUE) to jobs; repeatable')
      .env('BATON_JOB_ENV')
      .default([])
      .argParser(repeatable('--job-env', (v) => !v.includes('='))),
    new Option('--job-cpu-s <s>', 'CPU seconds per job process (0: no limit)')
      .env('BATON_JOB_CPU_S')
      .default(3600)
      .argParser(wholeNumber('--job-cpu-s', 0, 30 * 86_400)),
    new Option('--job-memory-mb <mb>', 'writable memory per job process in MiB (0: no limit)')
      .env('BATON_JOB_MEMORY_MB')
      .default(4096)
      .argParser(wholeNumber('--job-memory-mb', 0, 1024 * 1024)),
    new Option('--job-processes <n>', 'processes of one job at once (0: no limit)')
      .env('BATON_JOB_PROCESSES')
      .default(512)
      .argParser(wholeNumber('--job-processes', 0, 1_000_000)),
    new Option(
      '--job-file-mb <mb>',
      'largest file a job writes, its output log too, in MiB (0: no limit)',
    )
      .env('BATON_JOB_FILE_MB')
      .default(4096)
      .argParser(wholeNumber('--job-file-mb', 0, 1024 * 1024 * 1024)),
    new Option(
      '--job-ro-path <dir>',
      'host directory that sandboxed jobs see read-only; repeatable',
    )
      .env('BATON_JOB_RO_PATHS')
      .default([])
      .argParser(repeatable('--job-ro-path')),
    new Option('--work-root <dir>', "holds each owner's work directory (default: <data>/work)")
      .env('BATON_WORK_ROOT')
      .argParser(nonEmpty('--work-root')),
    new Option('--work-dir <owner=dir>', "an owner's work directory elsewhere; repeatable")
      .env('BATON_WORK_DIRS')
      .default([])
      .argParser((value: string, previous: string[] | undefined) => {
        const items = repeatable('--work-dir')(value, previous);
        items.forEach(ownerDir);
        return items;
      }),
  ];
}

/** Default address of the Stately inspector (`@statelyai/inspect`'s own server). */
const INSPECTOR_URL = 'ws://localhost:8080';

/**
 * Reads `--inspect [url]` / `BATON_INSPECT`: absent, `0` or `false` is off;
 * the bare flag, `1` or `true` is the default inspector; a `ws(s)://` URL is that one.
 * Returns null for anything else.
 */
export function inspectSetting(
  value: boolean | string | undefined,
): { enabled: boolean; url: string } | null {
  if (value === undefined || value === false) return { enabled: false, url: INSPECTOR_URL };
  if (value === true) return { enabled: true, url: INSPECTOR_URL };
  const text = value.trim().toLowerCase();
  if (text === '0' || text === 'false' || text === 'off')
    return { enabled: false, url: INSPECTOR_URL };
  if (text === '' || text === '1' || text === 'true' || text === 'on') {
    return { enabled: true, url: INSPECTOR_URL };
  }
  return /^wss?:\/\/[^\s]+$/i.test(value.trim()) ? { enabled: true, url: value.trim() } : null;
}

/** Checks between options that commander cannot express; returns the problem or null. */
export function crossCheck(options: ServeOptions): string | null {
  if (options.retryMaxMs < options.retryBaseMs) {
    return `--retry-max-ms (${options.retryMaxMs}) must be at least --retry-base-ms (${options.retryBaseMs})`;
  }
  if (inspectSetting(options.inspect) === null) {
    return `--inspect takes a ws:// URL (or nothing), got "${String(options.inspect)}"`;
  }
  if (options.store === 'postgres' && !options.databaseUrl) {
    return '--store postgres needs --database-url (BATON_DATABASE_URL)';
  }
  if ((options.agent === 'openai' || options.agent === 'sse') && !options.agentUrl) {
    return `--agent ${options.agent} needs --agent-url (BATON_AGENT_URL)`;
  }
  if (options.sandbox === 'none' && options.jobNetwork === 'off') {
    return '--job-network off needs --sandbox bwrap';
  }
  for (const path of options.jobRoPath ?? []) {
    if (!path.startsWith('/')) return `--job-ro-path takes absolute paths, got "${path}"`;
  }
  return null;
}

/**
 * The `baton` command. `baton serve` builds the runtime and the app and is
 * the only place that listens. `main(argv)` is what `bin/baton.js` runs.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createLogger } from './logger.js';
import { crossCheck, inspectSetting, serveOptions, type ServeOptions } from './cli-options.js';
import { machineDefinitions } from './machines/definitions.js';
import { createAgent } from './runtime/agents/create-agent.js';
import { SqliteStore } from './runtime/store/sqlite.js';
import { PostgresStore } from './runtime/store/postgres.js';
import { PgCoordinator } from './runtime/pg-coordinator.js';
import type { Store } from './runtime/store/store.js';
import { Baton } from './runtime/system.js';
import { DataDirInUseError, lockDataDir, type DataDirLock } from './runtime/data-dir-lock.js';
import { chooseSandbox, SandboxChoiceError } from './runtime/sandbox/choose-sandbox.js';
import { JobEnvError, parseJobEnv } from './runtime/sandbox/job-env.js';
import type { Sandbox } from './runtime/sandbox/sandbox.js';
import { describeSandbox } from './runtime/sandbox/sandbox-config.js';
import { loadAuth, metricsAccess, TokenConfigError, type LoadedAuth } from './transport/auth.js';
import { buildApp, VERSION } from './transport/http.js';
import { createInspection, DEFAULT_INSPECTOR_URL } from './transport/inspect.js';

/** A problem with the options or the environment: said in one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A started service. */
export interface RunningServer {
  /** `http://host:port`, with the real port even after `--port 0`. */
  url: string;
  port: number;
  app: FastifyInstance;
  baton: Baton;
  /** Stops listening, closes WebSockets, then the runtime. Safe to call twice. */
  close(): Promise<void>;
}

/** The dashboard's directory, next to `src/` and `dist/`, when it is there. */
function publicDir(): string | undefined {
  const dir = fileURLToPath(new URL('../public/', import.meta.url));
  return existsSync(join(dir, 'index.html')) ? dir : undefined;
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The store the options name. PostgreSQL comes with the coordinator that lets
 * several processes share it (SPEC §8); its schema is `BATON_PG_SCHEMA` or `baton`.
 */
async function openStore(
  options: ServeOptions,
  dataDir: string,
  logger: Logger,
): Promise<{ store: Store; coordinator: PgCoordinator | null }> {
  if (options.store !== 'postgres') {
    const store = new SqliteStore({ path: join(dataDir, 'baton.db') });
    await store.init();
    return { store, coordinator: null };
  }
  const connectionString = options.databaseUrl ?? '';
  const schema = options.pgSchema;
  const store = new PostgresStore({ connectionString, schema });
  try {
    await store.init();
  } catch (error) {
    await store.close();
    throw new UsageError(
      `cannot open PostgreSQL at ${redact(connectionString)}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const coordinator = new PgCoordinator({
    connectionString,
    schema,
    hostId: `h_${hostname()}_${process.pid}_${randomBytes(3).toString('hex')}`,
    logger: logger.child({ component: 'coordinator' }),
  });
  return { store, coordinator };
}

/** A database URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the given URL';
  }
}

/**
 * Starts the service: data dir, SQLite store, tokens, agent, runtime
 * (recovering unfinished jobs), app; then listens and logs one
 * `baton listening` line with the address, the token, the dashboard and the agent.
 */
export async function serve(options: ServeOptions, logger: Logger): Promise<RunningServer> {
  const problem = crossCheck(options);
  if (problem) throw new UsageError(problem);

  const dataDir = resolve(options.data);
  await mkdir(dataDir, { recursive: true });
  let lock: DataDirLock;
  try {
    lock = lockDataDir(dataDir);
  } catch (error) {
    if (error instanceof DataDirInUseError) throw new UsageError(error.message);
    throw error;
  }
  try {
    const server = await serveIn(dataDir, options, logger);
    return {
      ...server,
      close: () => server.close().finally(() => lock.release()),
    };
  } catch (error) {
    lock.release();
    throw error;
  }
}

/** {@link serve} once this process holds the data dir. */
async function serveIn(
  dataDir: string,
  options: ServeOptions,
  logger: Logger,
): Promise<RunningServer> {
  let auth;
  try {
    auth = await loadAuth({ tokens: process.env['BATON_TOKENS'], token: options.token, dataDir });
  } catch (error) {
    if (error instanceof TokenConfigError) throw new UsageError(error.message);
    throw error;
  }
  let agent;
  try {
    agent = createAgent({
      ...(options.agent ? { kind: options.agent } : {}),
      ...(options.agentUrl ? { url: options.agentUrl } : {}),
      ...(options.agentModel ? { model: options.agentModel } : {}),
      ...(options.agentKey ? { apiKey: options.agentKey } : {}),
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const fellBack = !options.agent && !options.agentUrl;
  const sandbox = await sandboxFor(options, dataDir, auth, logger);

  const inspect = inspectSetting(options.inspect) ?? { enabled: false, url: DEFAULT_INSPECTOR_URL };
  const inspectUrl = inspect.url;
  const inspection = createInspection({ enabled: inspect.enabled, url: inspectUrl, logger });

  const { store, coordinator } = await openStore(options, dataDir, logger);
  const baton = new Baton({
    store,
    agent,
    dataDir,
    sandbox,
    workRoot: workRootOf(options, dataDir),
    workDirs: ownerWorkDirs(options.workDir),
    retainMs: options.retainDays * 86_400_000,
    ...(coordinator ? { coordinator } : {}),
    logger: logger.child({ component: 'runtime' }),
    inspect: inspection.inspect,
    policy: {
      maxAttempts: options.maxAttempts,
      retryBaseMs: options.retryBaseMs,
      retryMaxMs: options.retryMaxMs,
      agentTimeoutS: options.agentTimeoutS,
      defaultJobTimeoutS: options.jobTimeoutS,
      limits: {
        server: options.maxRunningJobs,
        owner: options.maxJobsPerOwner,
        session: options.maxJobsPerSession,
      },
    },
  });
  const { recovered } = await baton.recover();
  if (recovered > 0) logger.info({ recovered }, 'recovered unfinished jobs');

  const dashboardDir = publicDir();
  const app = await buildApp({
    baton,
    auth: auth.auth,
    logger,
    machines: machineDefinitions,
    ...(dashboardDir ? { publicDir: dashboardDir } : {}),
    ...(inspection.inspect ? { inspectUrl } : {}),
    feed: { heartbeatMs: options.heartbeatS * 1000 },
    metricsAccess: metricsAccess(auth.auth, options.metricsToken ?? null),
  });
  try {
    await app.listen({ port: options.port, host: options.host });
  } catch (error) {
    await app.close().catch(() => undefined);
    await baton.close();
    inspection.close();
    const code = String((error as { code?: unknown }).code);
    const why = LISTEN_ERRORS[code];
    if (why !== undefined) {
      throw new UsageError(`cannot listen on ${options.host}:${options.port}: ${why} (${code})`);
    }
    throw error;
  }

  const port = (app.server.address() as AddressInfo).port;
  const url = `http://${displayHost(options.host)}:${port}`;
  const token = auth.defaultToken;
  const dashboard = dashboardDir
    ? `${url}/${token ? `?token=${encodeURIComponent(token)}` : ''}`
    : null;
  const agentNote = fellBack
    ? 'offline agent (no --agent-url given): answers from job results, no model'
    : `${agent.kind} agent, model ${agent.model}`;
  logger.info(
    {
      url,
      host: options.host,
      port,
      token,
      tokenSource: auth.source,
      owners: auth.auth.owners(),
      dashboard,
      agent: agent.kind,
      agentModel: agent.model,
      agentFallback: fellBack,
      store: options.store,
      sandbox: describeSandbox(sandbox.config),
      ...(coordinator ? { hostId: coordinator.hostId } : {}),
      dataDir,
      inspect: inspection.inspect ? inspectUrl : null,
      version: VERSION,
    },
    `baton listening on ${url} (${agentNote}; jobs ${sandboxNote(sandbox)})`,
  );

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      // Stop taking requests and close feeds first, so nothing new reaches a closing runtime.
      await app
        .close()
        .catch((error: unknown) => logger.error({ err: error }, 'closing the app failed'));
      await baton.close();
      inspection.close();
    })());
  return { url, port, app, baton, close };
}

/**
 * The sandbox the options and the machine allow (see chooseSandbox): a
 * refusal is a one-line usage error, a fallback is a warning.
 */
async function sandboxFor(
  options: ServeOptions,
  dataDir: string,
  auth: LoadedAuth,
  logger: Logger,
): Promise<Sandbox> {
  const secrets = [
    ...auth.secrets,
    ...[options.agentKey, process.env['OPENAI_API_KEY']].filter((s): s is string => !!s),
  ];
  try {
    const choice = await chooseSandbox({
      kind: options.sandbox,
      network: options.jobNetwork === undefined ? undefined : options.jobNetwork === 'on',
      owners: auth.auth.owners().length,
      env: parseJobEnv(options.jobEnv, secrets),
      limits: {
        cpuSeconds: options.jobCpuS,
        memoryBytes: options.jobMemoryMb * 1024 * 1024,
        processes: options.jobProcesses,
        fileBytes: options.jobFileMb * 1024 * 1024,
      },
      readOnlyPaths: options.jobRoPath,
      supportDir: join(dataDir, 'sandbox'),
      workRoot: workRootOf(options, dataDir),
    });
    for (const warning of choice.warnings)
      logger.warn({ sandbox: choice.sandbox.config.kind }, warning);
    return choice.sandbox;
  } catch (error) {
    if (error instanceof SandboxChoiceError || error instanceof JobEnvError) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

function sandboxNote(sandbox: Sandbox): string {
  const { kind, network } = sandbox.config;
  return kind === 'bwrap'
    ? `sandboxed by bubblewrap, network ${network ? 'on' : 'off'}`
    : 'not sandboxed';
}

function workRootOf(options: ServeOptions, dataDir: string): string {
  return options.workRoot ? resolve(options.workRoot) : join(dataDir, 'work');
}

/** `--work-dir OWNER=DIR` entries as a map. */
function ownerWorkDirs(entries: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    map[entry.slice(0, eq)] = resolve(entry.slice(eq + 1));
  }
  return map;
}

/** Why `listen` failed, in words, for the errors a bad `--host` or `--port` causes. */
const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is in use',
  EACCES: 'not allowed to listen there',
  EADDRNOTAVAIL: 'no such address on this machine',
  ENOTFOUND: 'no such host or address',
  EAI_AGAIN: 'the host name cannot be resolved now',
  EINVAL: 'not an address to listen on',
};

/** The longest a graceful stop may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/** Builds the `baton` program; `run` receives the parsed `serve` options. */
export function program(run: (options: ServeOptions) => Promise<void>): Command {
  const cmd = new Command('baton')
    .description('Makes an AI agent continue its work when a background job it started finishes.')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(run baton serve --help for every option)');
  const serveCmd = cmd
    .command('serve')
    .description('start the service (HTTP API, WebSocket feed, dashboard)')
    .exitOverride()
    .action(async (opts: ServeOptions) => run(opts));
  for (const option of serveOptions()) serveCmd.addOption(option);
  return cmd;
}

/**
 * Runs the CLI. Bad options exit 2 with one clear line; `serve` keeps the
 * process running until SIGINT/SIGTERM, then shuts down gracefully and exits
 * 0 (a second signal exits at once).
 */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const cli = program(async (options) => {
    const { logger, stopping: quietStdout } = createLogger(
      options.pretty === true,
      options.logLevel,
    );
    let server: RunningServer | null = null;
    let stopping = false;
    const stop = (running: RunningServer) =>
      running.close().then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    // Taken before the start, so that a signal during it (a supervisor that
    // gives up, a test that stops the service at once) still stops it cleanly.
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      quietStdout();
      logger.info({ signal }, 'shutting down');
      // The drain has its own deadline; this one holds whatever else might hang.
      setTimeout(() => {
        logger.error({ afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown took too long: exiting now');
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS).unref();
      if (server) void stop(server);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The runtime's background work is fire-and-forget; a stray rejection is
    // logged, never allowed to take the service (and every running job's watch) down.
    process.on('unhandledRejection', (reason) =>
      logger.error({ err: reason }, 'unhandled rejection'),
    );
    try {
      server = await serve(options, logger);
    } catch (error) {
      if (error instanceof UsageError) {
        process.stderr.write(`baton: ${error.message}\n`);
        process.exit(2);
      }
      logger.fatal({ err: error }, 'baton could not start');
      process.exit(1);
    }
    if (stopping) void stop(server);
  });
  try {
    await cli.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not errors; anything else commander refused is a usage error.
      const ok = error.code === 'commander.helpDisplayed' || error.code === 'commander.version';
      process.exit(ok || error.exitCode === 0 ? 0 : 2);
    }
    throw error;
  }
}

const invokedAs = process.argv[1] ? safeRealpath(process.argv[1]) : null;
if (invokedAs && import.meta.url === pathToFileURL(invokedAs).href) {
  void main();
}

function safeRealpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

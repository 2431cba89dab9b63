/**
 * Runs `baton serve` as a real child process for end-to-end tests and reads
 * its address and token from the `baton listening` pino line on stdout.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/support/baton-process.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A running `baton serve`. */
export interface BatonProcess {
  child: ChildProcess;
  port: number;
  /** The default owner's token as printed; '' when only named owners (BATON_TOKENS) have tokens. */
  token: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The dashboard address as printed, with `?token=`. */
  dashboard: string;
  /** Every stdout/stderr line so far, for failure messages. */
  log: string[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  /** 0 picks a free port. */
  port: number;
  /** How long to wait for the listening line. @defaultValue 30000 */
  timeoutMs?: number;
  /** Agent and policy options. @defaultValue ['--agent', 'offline'] */
  extraArgs?: string[];
  /** Environment variables of the server, besides the test machine's (never its BATON_* ones). */
  env?: Record<string, string>;
}

interface ListeningLine {
  msg?: unknown;
  port?: unknown;
  token?: unknown;
  dashboard?: unknown;
}

/** Starts `node --import tsx src/cli.ts serve --agent offline --port <port> --data <dir>` (or other `extraArgs`). */
export async function startBaton(options: StartOptions): Promise<BatonProcess> {
  // The service must not pick up a developer's token, agent or port from the environment.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('BATON_') && key !== 'OPENAI_API_KEY') env[key] = value;
  }
  env['BATON_LOG_LEVEL'] = 'info';
  Object.assign(env, options.env);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'serve',
      ...(options.extraArgs ?? ['--agent', 'offline']),
      '--host',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--data',
      options.dataDir,
    ],
    { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  const exited = once(child, 'exit');
  let stopping: Promise<void> | null = null;
  const stop = (graceMs = 10_000): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    })());

  const listening = await new Promise<ListeningLine>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`baton serve did not print its listening line in time:\n${log.join('\n')}`),
        ),
      options.timeoutMs ?? 30_000,
    );
    const lines = (chunk: Buffer, onLine: (line: string) => void) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) onLine(line);
    };
    child.stderr?.on('data', (chunk: Buffer) =>
      lines(chunk, (line) => log.push(`[stderr] ${line}`)),
    );
    child.stdout?.on('data', (chunk: Buffer) =>
      lines(chunk, (line) => {
        log.push(line);
        let parsed: ListeningLine;
        try {
          parsed = JSON.parse(line) as ListeningLine;
        } catch {
          return;
        }
        if (
          typeof parsed.port === 'number' &&
          typeof parsed.msg === 'string' &&
          parsed.msg.startsWith('baton listening')
        ) {
          clearTimeout(timer);
          resolve(parsed);
        }
      }),
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`baton serve exited (${code ?? signal}) before listening:\n${log.join('\n')}`),
      );
    });
  }).catch(async (error: unknown) => {
    await stop(2000);
    throw error;
  });

  const port = listening.port as number;
  const token = typeof listening.token === 'string' ? listening.token : '';
  const url = `http://127.0.0.1:${port}`;
  const dashboard =
    typeof listening.dashboard === 'string'
      ? listening.dashboard
      : `${url}/?token=${encodeURIComponent(token)}`;
  return { child, port, token, url, dashboard, log, stop };
}

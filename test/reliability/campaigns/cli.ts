/**
 * `baton serve` as a real child process for the campaigns: spawned from the
 * built CLI (`bin/baton.js`, which runs `dist/`), its address read from the
 * `baton listening` log line. The spawn returns at once, so that a campaign
 * can kill the process before it listens (during start-up or recovery).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/reliability/campaigns/cli.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A spawned `baton serve`. */
export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  /** Epoch ms of the spawn. */
  spawnedAt: number;
  /** Resolves with the base URL once the listening line is printed; rejects if it exits first. */
  listening: Promise<string>;
  /** The base URL once listening, else null. */
  url: string | null;
  /** Epoch ms of the listening line, else null. */
  listeningAt: number | null;
  /** Epoch ms of the `recovered unfinished jobs` line (printed when recovery had work), else null. */
  recoveredAt: number | null;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every line printed so far (stdout and stderr). */
  log: string[];
  /** SIGKILL now; resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** The environment without any BATON_* setting or key of the machine running the tests. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('BATON_') && key !== 'OPENAI_API_KEY') env[key] = value;
  }
  return { ...env, BATON_LOG_LEVEL: 'info', ...extra };
}

/** The command that runs the CLI: the built one (fast start), which `npm run build` makes. */
export function cliCommand(): string[] {
  const cli = `${REPO_ROOT}dist/cli.js`;
  if (!existsSync(cli)) {
    throw new Error('dist/cli.js is missing: run `npx tsc -p tsconfig.build.json` (npm run build)');
  }
  return [`${REPO_ROOT}bin/baton.js`];
}

/** Every `baton serve` spawned here and not yet exited: killed if the test process exits first. */
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

/** Spawns `baton serve --port 0 --data <dir> <args>` and returns at once. */
export function spawnServe(
  dataDir: string,
  args: string[],
  env: Record<string, string> = {},
): ServeProcess {
  const child = spawn(
    process.execPath,
    [...cliCommand(), 'serve', '--host', '127.0.0.1', '--port', '0', '--data', dataDir, ...args],
    { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error('could not spawn baton serve');
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  const log: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const proc: ServeProcess = {
    child,
    pid: child.pid,
    spawnedAt: Date.now(),
    url: null,
    listeningAt: null,
    recoveredAt: null,
    exited,
    log,
    listening: Promise.resolve(''),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  proc.listening = new Promise<string>((resolve, reject) => {
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        if (log.length < 2000) log.push(line);
        if (line.includes('recovered unfinished jobs')) proc.recoveredAt = Date.now();
        if (!line.includes('baton listening')) continue;
        try {
          const entry: unknown = JSON.parse(line);
          const url =
            typeof entry === 'object' && entry !== null ? Reflect.get(entry, 'url') : null;
          if (typeof url === 'string') {
            proc.url = url;
            proc.listeningAt = Date.now();
            resolve(url);
          }
        } catch {
          // Not a JSON line.
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (log.length < 2000) log.push(`[stderr] ${chunk.toString('utf8').trimEnd()}`);
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`baton serve exited (${code ?? signal}) before listening`)),
    );
  });
  // A kill before listening is a normal event of a campaign, not an unhandled rejection.
  proc.listening.catch(() => undefined);
  return proc;
}

/** Resident memory of a process in bytes (`VmRSS` of /proc/<pid>/status), or null if gone. */
export function rssBytes(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Which sandbox a server runs its jobs in (SPEC §4, safe defaults):
 *
 * - asked for `bwrap`: bubblewrap must work here, or the server does not start;
 * - asked for `none`: no sandbox, said loudly when several owners share the server;
 * - not asked: `bwrap` when it works; otherwise a server with several owners
 *   refuses to start (one owner's job could read another's work and tokens),
 *   and a single-owner server starts with `none` and a warning that says how
 *   to install bubblewrap.
 *
 * "Works" is tried, not assumed: a real sandboxed command must run and answer.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { Sandbox, type SandboxTools } from './sandbox.js';
import type { JobUser, ResourceLimits, SandboxConfig, SandboxKind } from './sandbox-config.js';
import { WorkDirs } from './work-dirs.js';

export const INSTALL_HINT = 'apt-get install bubblewrap';
const PROBE_ANSWER = 'baton-sandbox-ok';

/** A sandbox choice the server cannot start with; its message is one line. */
export class SandboxChoiceError extends Error {
  override readonly name = 'SandboxChoiceError';
}

/** The host user of a root server's jobs unless told otherwise: `nobody`. */
export const NOBODY: JobUser = { uid: 65534, gid: 65534 };

/**
 * Runs one command in the sandbox, in a work directory made the way owners'
 * are; null when it answered, else why not (one line).
 */
export async function probeSandbox(sandbox: Sandbox, workRoot: string): Promise<string | null> {
  const dirs = new WorkDirs(workRoot, {}, sandbox.config.runAs);
  let workDir: string;
  try {
    workDir = await dirs.ensure(`.probe-${process.pid}`);
  } catch (error) {
    return `cannot make a work directory: ${error instanceof Error ? error.message : String(error)}`;
  }
  const launch = sandbox.launch({ workDir, cwd: workDir, shellCommand: `echo ${PROBE_ANSWER}` });
  const [file, ...args] = launch.argv as [string, ...string[]];
  try {
    return await new Promise<string | null>((resolve) => {
      execFile(file, args, { env: launch.env, timeout: 10_000 }, (error, stdout, stderr) => {
        if (!error && stdout.trim() === PROBE_ANSWER) resolve(null);
        else {
          const said = `${stderr}`.trim().split('\n')[0] ?? '';
          resolve(said || (error?.message.split('\n')[0] ?? 'no answer'));
        }
      });
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

export interface SandboxRequest {
  /** `--sandbox`; undefined lets the server choose. */
  kind: SandboxKind | undefined;
  /** `--job-network`; undefined: off with several owners, on with one. */
  network: boolean | undefined;
  owners: number;
  env: Readonly<Record<string, string>>;
  limits: ResourceLimits;
  readOnlyPaths: readonly string[];
  /**
   * The host user jobs run as under bwrap; undefined: {@link NOBODY} when the
   * server is root, else the server's own user.
   */
  runAs?: JobUser | undefined;
  /** The sandbox's own files (passwd, group). */
  supportDir: string;
  /** Where owners' work directories are made; the probe makes one there too. */
  workRoot: string;
  /** Where to find bwrap and prlimit; tests point these elsewhere. */
  tools?: SandboxTools;
}

export interface SandboxChoice {
  sandbox: Sandbox;
  /** Said once at start when not null. */
  warnings: string[];
}

/** See the module comment. Throws {@link SandboxChoiceError} when the server must not start. */
export async function chooseSandbox(request: SandboxRequest): Promise<SandboxChoice> {
  const warnings: string[] = [];
  const root = process.getuid?.() === 0;
  const make = (kind: SandboxKind, network: boolean): Sandbox => {
    const config: SandboxConfig = {
      kind,
      network,
      env: request.env,
      limits: request.limits,
      readOnlyPaths: request.readOnlyPaths,
      runAs: kind === 'none' ? null : (request.runAs ?? (root ? NOBODY : null)),
    };
    return new Sandbox(config, request.supportDir, request.tools);
  };
  const network = request.network ?? request.owners <= 1;

  if (request.kind === 'none') {
    if (request.network === false) {
      throw new SandboxChoiceError('--job-network off needs --sandbox bwrap');
    }
    if (request.owners > 1) {
      warnings.push(
        `jobs run without a sandbox (--sandbox none): the ${request.owners} owners' jobs can read each other's work and the server's files`,
      );
    }
    return withLimitWarning(make('none', true), warnings);
  }

  const reason = await bwrapProblem(() => make('bwrap', network), request.workRoot);
  if (reason === null) return withLimitWarning(make('bwrap', network), warnings);
  if (request.kind === 'bwrap') {
    throw new SandboxChoiceError(
      `--sandbox bwrap: bubblewrap does not work here (${reason}); install it with: ${INSTALL_HINT}`,
    );
  }
  if (request.owners > 1) {
    throw new SandboxChoiceError(
      `${request.owners} owners are configured and bubblewrap does not work here (${reason}): install it with "${INSTALL_HINT}", or start with --sandbox none to run every owner's jobs unsandboxed`,
    );
  }
  if (request.network === false) {
    throw new SandboxChoiceError(
      `--job-network off needs the bwrap sandbox, which does not work here (${reason}); install it with: ${INSTALL_HINT}`,
    );
  }
  warnings.push(
    `jobs run without a sandbox: bubblewrap does not work here (${reason}); install it with: ${INSTALL_HINT}`,
  );
  return withLimitWarning(make('none', true), warnings);
}

async function bwrapProblem(make: () => Sandbox, workRoot: string): Promise<string | null> {
  let sandbox: Sandbox;
  try {
    sandbox = make();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return probeSandbox(sandbox, workRoot);
}

function withLimitWarning(sandbox: Sandbox, warnings: string[]): SandboxChoice {
  if (!sandbox.limited) {
    warnings.push('prlimit (util-linux) is not installed: jobs run without resource limits');
  }
  return { sandbox, warnings };
}

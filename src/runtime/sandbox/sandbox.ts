/**
 * Turns "run this for that owner" into a command line and an environment:
 * under `bwrap` in the owner's own sandbox, under `none` on the host, and in
 * both cases with a clean environment and the resource limits. Process jobs
 * (through their wrapper) and the agent's `run_command` both launch here, so
 * the two can never differ in what they let a command see.
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join, relative } from 'node:path';
import {
  SANDBOX_FDS,
  SANDBOX_HOME,
  SANDBOX_SCRIPT,
  bwrapArgs,
  sandboxEtcFiles,
} from './bwrap-args.js';
import { jobEnvironment } from './job-env.js';
import type { ResourceLimits, SandboxConfig } from './sandbox-config.js';

/** A command ready to spawn. */
export interface Launch {
  argv: string[];
  /** The whole environment of the spawned process: never the server's. */
  env: Record<string, string>;
}

export interface LaunchSpec {
  /** The owner's work directory on the host. */
  workDir: string;
  /** The working directory on the host, inside `workDir`. */
  cwd: string;
  /** A script on the host, run with `sh`; or else `shellCommand`. */
  script?: string;
  /** A command line, run with `sh -c`. */
  shellCommand?: string;
}

/** The first executable `name` on the server's PATH and the usual system directories. */
export function findExecutable(name: string, path = process.env['PATH'] ?? ''): string | null {
  const dirs = [...path.split(delimiter), '/usr/local/bin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}

/** `prlimit` options for the limits that are set (0 is none). */
function limitArgs(limits: ResourceLimits): string[] {
  const args: string[] = [];
  if (limits.cpuSeconds > 0) args.push(`--cpu=${limits.cpuSeconds}`);
  if (limits.memoryBytes > 0) args.push(`--data=${limits.memoryBytes}`);
  if (limits.processes > 0) args.push(`--nproc=${limits.processes}`);
  if (limits.fileBytes > 0) args.push(`--fsize=${limits.fileBytes}`);
  return args;
}

/** Where {@link Sandbox} looks for its tools; tests point these elsewhere. */
export interface SandboxTools {
  bwrap: string | null;
  prlimit: string | null;
  /** Drops root before bwrap starts (util-linux). */
  setpriv: string | null;
}

/** The tools as installed on this machine. */
export function installedTools(): SandboxTools {
  return {
    bwrap: findExecutable('bwrap'),
    prlimit: findExecutable('prlimit'),
    setpriv: findExecutable('setpriv'),
  };
}

/**
 * Opens the script, passwd and group on the descriptors bwrap reads them
 * from, while still the server's user (they live in the data dir, which the
 * job's user cannot enter), then becomes the rest of its arguments.
 */
const OPENER =
  `f=$1 p=$2 g=$3; shift 3; ` +
  `exec "$@" ${SANDBOX_FDS.script}<"$f" ${SANDBOX_FDS.passwd}<"$p" ${SANDBOX_FDS.group}<"$g"`;

/** See the module comment. */
export class Sandbox {
  private readonly etcDir: string;
  private prepared = false;

  /**
   * @param supportDir holds the sandbox's own `passwd` and `group` (not secret).
   * @param tools `bwrap` is needed for kind `bwrap`; without `prlimit` no limits are set.
   */
  constructor(
    readonly config: SandboxConfig,
    supportDir: string,
    readonly tools: SandboxTools = installedTools(),
  ) {
    this.etcDir = join(supportDir, 'etc');
    if (config.kind === 'bwrap' && tools.bwrap === null) {
      throw new Error('bubblewrap (bwrap) is not installed');
    }
    if (config.kind === 'bwrap' && config.runAs !== null && tools.setpriv === null) {
      throw new Error('setpriv (util-linux) is not installed, and jobs must not run as root');
    }
  }

  /** Whether the resource limits are applied (they need `prlimit`). */
  get limited(): boolean {
    return this.tools.prlimit !== null;
  }

  launch(spec: LaunchSpec): Launch {
    const program =
      spec.script !== undefined
        ? ['/bin/sh', this.config.kind === 'bwrap' ? SANDBOX_SCRIPT : spec.script]
        : ['/bin/sh', '-c', spec.shellCommand ?? ''];
    const limited =
      this.tools.prlimit === null
        ? program
        : [this.tools.prlimit, ...limitArgs(this.config.limits), '--', ...program];
    if (this.config.kind === 'none') {
      return { argv: limited, env: jobEnvironment('none', spec.workDir, this.config.env) };
    }
    this.prepare();
    const env = jobEnvironment('bwrap', SANDBOX_HOME, this.config.env);
    const rel = relative(spec.workDir, spec.cwd);
    const cwd =
      rel === '' || rel.startsWith('..') || isAbsolute(rel)
        ? SANDBOX_HOME
        : join(SANDBOX_HOME, rel);
    const args = bwrapArgs(this.config, {
      workDir: spec.workDir,
      cwd,
      script: spec.script !== undefined,
      env,
    });
    const runAs = this.config.runAs;
    const dropRoot =
      runAs === null
        ? []
        : [
            this.tools.setpriv as string,
            `--reuid=${runAs.uid}`,
            `--regid=${runAs.gid}`,
            '--clear-groups',
            '--',
          ];
    const files = [
      spec.script ?? '/dev/null',
      join(this.etcDir, 'passwd'),
      join(this.etcDir, 'group'),
    ];
    return {
      argv: [
        '/bin/sh',
        '-c',
        OPENER,
        'baton-sandbox',
        ...files,
        ...dropRoot,
        this.tools.bwrap as string,
        ...args,
        ...limited,
      ],
      env,
    };
  }

  /** Writes the sandbox's passwd and group once. */
  private prepare(): void {
    if (this.prepared) return;
    mkdirSync(this.etcDir, { recursive: true, mode: 0o700 });
    const files = sandboxEtcFiles();
    writeFileSync(join(this.etcDir, 'passwd'), files.passwd);
    writeFileSync(join(this.etcDir, 'group'), files.group);
    this.prepared = true;
  }
}

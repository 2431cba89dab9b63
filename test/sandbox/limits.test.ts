import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/runtime/run-command.js';
import { NOBODY } from '../../src/runtime/sandbox/choose-sandbox.js';
import { Sandbox } from '../../src/runtime/sandbox/sandbox.js';
import { WorkDirs } from '../../src/runtime/sandbox/work-dirs.js';
import { processesUnder } from '../support/processes.js';
import {
  DEFAULT_RESOURCE_LIMITS,
  type ResourceLimits,
  type SandboxKind,
} from '../../src/runtime/sandbox/sandbox-config.js';

/** As the server would choose: a root server's jobs run as nobody. */
const JOB_USER = process.getuid?.() === 0 ? NOBODY : null;

/** Each limit, under both sandboxes, through the launcher every command goes through. */
describe.each<SandboxKind>(['bwrap', 'none'])('resource limits under %s', (kind) => {
  const runAs = kind === 'bwrap' ? JOB_USER : null;
  let dir: string;
  let work: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `baton-limits-${kind}-`));
    work = await new WorkDirs(join(dir, 'work'), {}, runAs).ensure('alice');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (command: string, limits: Partial<ResourceLimits>) => {
    const sandbox = new Sandbox(
      {
        kind,
        network: false,
        env: {},
        limits: { ...DEFAULT_RESOURCE_LIMITS, ...limits },
        readOnlyPaths: [],
        runAs,
      },
      join(dir, 'support'),
    );
    const launch = sandbox.launch({ workDir: work, cwd: work, shellCommand: command });
    return runCommand(launch, { cwd: work, signal: new AbortController().signal });
  };

  it('stops a file at the file size limit (SIGXFSZ)', async () => {
    const result = await run('head -c 3000000 /dev/zero > big; echo "exit $?"', {
      fileBytes: 1024 * 1024,
    });
    expect(result.output).toMatch(/exit 153/);
    expect(statSync(join(work, 'big')).size).toBe(1024 * 1024);
  });

  it('stops a process at the CPU limit (SIGXCPU)', async () => {
    const result = await run('sh -c "while :; do :; done"; echo "exit $?"', { cpuSeconds: 1 });
    expect(result.output).toMatch(/exit (152|137)/);
  });

  it('refuses memory past the memory limit', async () => {
    const result = await run(
      `python3 -c "bytearray(256 * 1024 * 1024)" 2>&1 | tail -1; echo "exit $?"`,
      { memoryBytes: 128 * 1024 * 1024 },
    );
    expect(result.output).toContain('MemoryError');
  });

  it('passes the limits to every process of the command', async () => {
    const result = await run('sh -c "ulimit -t; ulimit -f"', {
      cpuSeconds: 77,
      fileBytes: 512 * 1000,
    });
    expect(result.output).toBe('77\n1000\n');
  });
});

describe('the process limit under bwrap', () => {
  it('holds a fork bomb, counting only the processes of the job', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-bomb-'));
    try {
      const work = await new WorkDirs(join(dir, 'work'), {}, JOB_USER).ensure('alice');
      const sandbox = new Sandbox(
        {
          kind: 'bwrap',
          network: false,
          env: {},
          limits: { ...DEFAULT_RESOURCE_LIMITS, processes: 24 },
          readOnlyPaths: [],
          runAs: JOB_USER,
        },
        join(dir, 'support'),
      );
      // A subshell forks until the limit refuses (dash then gives up on it); the
      // job counts what it holds with builtins alone, since it cannot fork either.
      const command =
        '(i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; ' +
        'set -- /proc/[0-9]*; echo running $#';
      const launch = sandbox.launch({ workDir: work, cwd: work, shellCommand: command });
      const result = await runCommand(launch, {
        cwd: work,
        signal: new AbortController().signal,
      });
      const running = Number(/running (\d+)/.exec(result.output)?.[1]);
      expect(running).toBeGreaterThan(10);
      expect(running).toBeLessThanOrEqual(24);
      // The sleeps die with the sandbox when the job's shell exits.
      expect(processesUnder(work)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

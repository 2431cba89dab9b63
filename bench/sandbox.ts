/**
 * What the sandbox costs a job at its start: the time from asking the
 * process runner to start a job to the job's command running (it prints the
 * wall clock as its first act), with the launcher `baton serve` uses, under
 * bubblewrap and without a sandbox. Jobs start one at a time and the two
 * kinds alternate, so both see the same machine.
 *
 * Run: node --import tsx bench/sandbox.ts [jobs per kind]   (needs bubblewrap)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ProcessRunner, type ProcessExit } from '../src/runtime/jobs/process-runner.js';
import { chooseSandbox } from '../src/runtime/sandbox/choose-sandbox.js';
import {
  DEFAULT_RESOURCE_LIMITS,
  type SandboxKind,
} from '../src/runtime/sandbox/sandbox-config.js';
import type { Sandbox } from '../src/runtime/sandbox/sandbox.js';
import { WorkDirs } from '../src/runtime/sandbox/work-dirs.js';
import { machineInfo, percentile } from './machine-info.js';

const JOBS = Number(process.argv[2] ?? 200);
const WARM_UP = 10;

const dir = mkdtempSync(join(tmpdir(), 'baton-bench-sandbox-'));
const nowMs = () => performance.timeOrigin + performance.now();

async function sandboxOf(kind: SandboxKind): Promise<Sandbox> {
  const choice = await chooseSandbox({
    kind,
    network: undefined,
    owners: 1,
    env: {},
    limits: DEFAULT_RESOURCE_LIMITS,
    readOnlyPaths: [],
    supportDir: join(dir, 'sandbox'),
    workRoot: join(dir, 'work'),
  });
  return choice.sandbox;
}

const exits = new Map<string, (exit: ProcessExit) => void>();
const runner = new ProcessRunner({
  onExit: (jobId, exit) => exits.get(jobId)?.(exit),
  killGraceMs: 1000,
});

let seq = 0;
/** Milliseconds from the start call to the command's first act. */
async function startCost(sandbox: Sandbox): Promise<number> {
  const jobId = `j_${seq++}`;
  const workDir = await new WorkDirs(join(dir, 'work'), {}, sandbox.config.runAs).ensure('bench');
  const ended = new Promise<ProcessExit>((resolve) => exits.set(jobId, resolve));
  const asked = nowMs();
  await runner.start({
    jobId,
    command: 'date +%s%N',
    cwd: workDir,
    timeoutS: 60,
    dir: join(dir, 'jobs', jobId),
    launch: (script) => sandbox.launch({ workDir, cwd: workDir, script }),
  });
  const exit = await ended;
  exits.delete(jobId);
  const ran = Number(BigInt(exit.output.trim()) / 1000n) / 1000;
  if (!Number.isFinite(ran) || exit.exitCode !== 0) {
    throw new Error(`job ${jobId} failed: ${exit.output}`);
  }
  return ran - asked;
}

try {
  const kinds: SandboxKind[] = ['none', 'bwrap'];
  const sandboxes = { none: await sandboxOf('none'), bwrap: await sandboxOf('bwrap') };
  if (sandboxes.bwrap.config.kind !== 'bwrap') throw new Error('bubblewrap does not work here');
  const samples: Record<SandboxKind, number[]> = { none: [], bwrap: [] };
  for (let i = 0; i < WARM_UP; i++) for (const kind of kinds) await startCost(sandboxes[kind]);
  for (let i = 0; i < JOBS; i++) {
    for (const kind of kinds) samples[kind].push(await startCost(sandboxes[kind]));
  }
  console.log(`bench sandbox on ${machineInfo()}`);
  for (const kind of kinds) {
    const sorted = [...samples[kind]].sort((a, b) => a - b);
    const label =
      kind === 'bwrap'
        ? `bwrap (as uid ${String(sandboxes.bwrap.config.runAs?.uid ?? process.getuid?.())})`
        : 'none';
    console.log(
      `sandbox ${label}: ${JOBS} jobs, start -> command runs p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms`,
    );
  }
} finally {
  await runner.close({ kill: true });
  rmSync(dir, { recursive: true, force: true });
}

import { readdirSync, readFileSync } from 'node:fs';

/** Pids of live processes whose command line mentions `dir` (the jobs of a data dir). */
export function processesUnder(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Zombies (state Z) are dead already; PID 1 here does not always reap them.
      if (/^\d+ \(.*\) Z/.test(status)) continue;
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) found.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Kills what a test left running under its data dir; returns how many it found. */
export function killProcessesUnder(dir: string): number {
  const pids = processesUnder(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

import { readdirSync, readFileSync } from 'node:fs';

/**
 * Live (non-zombie) processes whose process group is one of `pgids`: what a
 * job's group left running. A job's wrapper pid is its group id, so this finds
 * children that do not mention the data dir on their command line (`sleep`).
 */
export function membersOfGroups(pgids: ReadonlySet<number>): number[] {
  const found: number[] = [];
  if (pgids.size === 0) return found;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' || rest[0] === 'X') continue;
      if (pgids.has(Number(rest[2]))) found.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Live processes whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (/^\d+ \(.*\) [ZX]/.test(stat)) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(marker)) found.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** SIGKILLs every pid given (cleanup after a failed campaign); returns how many there were. */
export function killAll(pids: readonly number[]): number {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

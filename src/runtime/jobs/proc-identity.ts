/**
 * Process identity and liveness from Linux `/proc`.
 *
 * A pid alone does not name a process: after a restart of the service the pid
 * recorded for a job may belong to an unrelated process that the kernel handed
 * the same number. The boot id plus the process start time (field 22 of
 * `/proc/<pid>/stat`, in clock ticks since boot) do name one process, so the
 * runner stores that pair and compares it before it watches or signals a pid.
 *
 * These reads are synchronous on purpose: they are tiny reads of a virtual
 * file system, and `start()` must read the start time of its child before the
 * event loop gets a chance to reap it.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** The fields of `/proc/<pid>/stat` that the runner uses. */
export interface ProcStat {
  pid: number;
  /** One-letter state: `R`, `S`, `D`, `Z` (zombie), `X` (dead), … */
  state: string;
  ppid: number;
  /** Process group id. */
  pgrp: number;
  /** Session id. */
  session: number;
  /** Start time in clock ticks since boot (kept as text: it is only compared). */
  startTicks: string;
}

let cachedBootId: string | undefined;

/**
 * The kernel's boot id, which changes at every boot, so that a start time from
 * before a reboot never matches a process after it.
 */
export function readBootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      // Without a boot id the start time alone still tells processes apart
      // within one boot; an empty prefix keeps identities comparable.
      cachedBootId = '';
    }
  }
  return cachedBootId;
}

/**
 * Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
 * parentheses and may itself contain spaces and parentheses, so the fields are
 * counted from the last `)`.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  const pgrp = Number(rest[2]);
  const session = Number(rest[3]);
  const startTicks = rest[19];
  if (
    state === undefined ||
    startTicks === undefined ||
    !Number.isInteger(pid) ||
    !Number.isInteger(pgrp) ||
    !Number.isInteger(session)
  ) {
    return null;
  }
  return { pid, state, ppid, pgrp, session, startTicks };
}

/** Reads `/proc/<pid>/stat`; `null` when the process does not exist. */
export function readProcStat(pid: number): ProcStat | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(text);
}

/** The identity string of a stat entry: `<boot id>:<start ticks>`. */
export function identityOf(stat: ProcStat): string {
  return `${readBootId()}:${stat.startTicks}`;
}

/**
 * The identity of a live process (`<boot id>:<start ticks>`), or `null` when
 * there is no such process. A zombie still has an identity: its pid is not
 * free for reuse until it is reaped.
 */
export function processStartTime(pid: number): string | null {
  const stat = readProcStat(pid);
  return stat === null ? null : identityOf(stat);
}

/** A zombie has exited and only waits to be reaped; it runs nothing. */
export function isRunningState(state: string): boolean {
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

/**
 * Whether `pid` is running and is the process whose identity is `startTime`.
 * `process.kill(pid, 0)` is not enough: it succeeds for zombies (this host's
 * init does not always reap them) and for an unrelated process that reused
 * the pid.
 */
export function isSameProcessAlive(pid: number, startTime: string): boolean {
  const stat = readProcStat(pid);
  return stat !== null && isRunningState(stat.state) && identityOf(stat) === startTime;
}

/**
 * Pids of the running (non-zombie) members of process group `pgid`, found by
 * scanning `/proc`. Used only around kills and exits, never on a timer loop of
 * its own, so the cost of the scan (one small read per process) is paid rarely.
 */
export function liveGroupMembers(pgid: number): number[] {
  // The cheap check first: no process at all in the group (not even a zombie).
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return [];
    // EPERM: members exist but belong to someone else; fall through to the scan.
  }
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const members: number[] = [];
  for (const entry of entries) {
    const first = entry.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    const stat = readProcStat(Number(entry));
    if (stat !== null && stat.pgrp === pgid && isRunningState(stat.state)) {
      members.push(stat.pid);
    }
  }
  return members;
}

/**
 * Running members of the process group led by `pid`, a job's wrapper whose
 * identity is `startTime`; none when `pid` now names another process. A pid
 * is not reused while its group has members, so a different leader means the
 * group is not the job's; a missing leader leaves the job's stragglers.
 */
export function jobGroupMembers(pid: number, startTime: string): number[] {
  const leader = readProcStat(pid);
  if (leader !== null && identityOf(leader) !== startTime) return [];
  return liveGroupMembers(pid);
}

/**
 * Sends `signal` to the process group led by `pid`, unless that pid now names
 * a process other than `startTime` (never signal a reused pid's group).
 * Returns whether a signal was sent; throws on errors other than "no such
 * process".
 */
export function signalJobGroup(pid: number, startTime: string, signal: NodeJS.Signals): boolean {
  const leader = readProcStat(pid);
  if (leader !== null && identityOf(leader) !== startTime) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

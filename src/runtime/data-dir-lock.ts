/**
 * One `baton serve` per data dir. Two servers on one directory would each
 * "recover" the other's running jobs and fight over their rows; the second
 * must be refused, saying who holds the directory.
 *
 * The lock is an exclusive SQLite transaction on a file of its own: the
 * operating system drops it when the process ends, however it ends (SIGKILL
 * included), so a crash never leaves a stale lock behind, unlike a pid file
 * alone. The pid file beside it is only for the refusal's message.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const LOCK_FILE = 'instance.lock';
export const PID_FILE = 'baton.pid';

/** The data dir is held by another live process. */
export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError';
}

export interface DataDirLock {
  /** Lets the directory go; safe to call twice. */
  release(): void;
}

/** Takes the data dir for this process or throws {@link DataDirInUseError}. */
export function lockDataDir(dir: string): DataDirLock {
  // No busy wait: a held lock is an answer, not something to wait out.
  const db = new Database(join(dir, LOCK_FILE), { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if ((error as { code?: unknown }).code !== 'SQLITE_BUSY') throw error;
    throw new DataDirInUseError(`data dir ${dir} is in use by ${holder(dir)}`);
  }
  const pidFile = join(dir, PID_FILE);
  writeFileSync(pidFile, `${process.pid}\n`);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      rmSync(pidFile, { force: true });
      db.close();
    },
  };
}

function holder(dir: string): string {
  try {
    const pid = readFileSync(join(dir, PID_FILE), 'utf8').trim();
    return /^\d+$/.test(pid) ? `pid ${pid}` : 'another process';
  } catch {
    return 'another process';
  }
}

/**
 * Each owner's work directory: where that owner's jobs and `run_command`
 * calls work, and the only part of the host a sandboxed job can write.
 * `<root>/<owner>/` unless the operator maps an owner elsewhere.
 *
 * When jobs run as their own host user (a root server), the directories made
 * here belong to that user, and the root and the directory above it (the
 * data dir) are opened for passing through (`o+x`, never listing), so that
 * bwrap, running as that user, can reach the one directory it binds.
 */
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { JobUser } from './sandbox-config.js';

/** A directory name for an owner that can never be `.`, `..` or hold a `/`. */
export function ownerDirName(owner: string): string {
  return encodeURIComponent(owner).replace(/^\./, '%2E');
}

/**
 * Throws when the job's user cannot pass through a directory above `dir`
 * (the ones Baton opens itself excepted): bwrap, running as that user, could
 * not reach the work directory it binds.
 */
async function assertReachable(dir: string, user: JobUser): Promise<void> {
  for (let at = dirname(dir); at !== dirname(at); at = dirname(at)) {
    const info = await stat(at);
    const through =
      (info.mode & 0o001) !== 0 ||
      (info.uid === user.uid && (info.mode & 0o100) !== 0) ||
      (info.gid === user.gid && (info.mode & 0o010) !== 0);
    if (!through) {
      const mode = (info.mode & 0o777).toString(8);
      throw new Error(
        `jobs run as uid ${user.uid}, which cannot pass through ${at} (mode ${mode}): choose a --work-root (or --data) it can reach`,
      );
    }
  }
}

/** Lets others pass through `dir` (o+x) without listing it. */
async function letThrough(dir: string): Promise<void> {
  const info = await stat(dir);
  if ((info.mode & 0o001) === 0) await chmod(dir, (info.mode & 0o7777) | 0o001);
}

export class WorkDirs {
  readonly root: string;
  private readonly mapped: ReadonlyMap<string, string>;
  private readonly made = new Set<string>();
  private rootReady: Promise<void> | null = null;

  /**
   * @param mapped owner → directory, for owners the operator places themselves
   *   (the operator makes them writable for the job's user).
   * @param user the host user jobs run as, when not the server's own.
   */
  constructor(
    root: string,
    mapped: Readonly<Record<string, string>> = {},
    private readonly user: JobUser | null = null,
  ) {
    this.root = resolve(root);
    this.mapped = new Map(Object.entries(mapped).map(([owner, dir]) => [owner, resolve(dir)]));
  }

  /** The owner's work directory (absolute); see {@link ensure} to create it. */
  of(owner: string): string {
    return this.mapped.get(owner) ?? join(this.root, ownerDirName(owner));
  }

  /** The owner's work directory, created (private to the job's user) if missing. */
  async ensure(owner: string): Promise<string> {
    const dir = this.of(owner);
    if (this.made.has(dir)) return dir;
    const mapped = this.mapped.has(owner);
    if (!mapped) await this.prepareRoot();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (this.user !== null && !mapped) {
      const info = await stat(dir);
      if (info.uid !== this.user.uid) await chown(dir, this.user.uid, this.user.gid);
    }
    this.made.add(dir);
    return dir;
  }

  private prepareRoot(): Promise<void> {
    this.rootReady ??= (async () => {
      await mkdir(this.root, { recursive: true, mode: 0o711 });
      if (this.user === null) return;
      await letThrough(dirname(this.root));
      await letThrough(this.root);
      await assertReachable(dirname(this.root), this.user);
    })().catch((error: unknown) => {
      this.rootReady = null;
      throw error;
    });
    return this.rootReady;
  }
}

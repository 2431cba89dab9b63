/**
 * Each owner's work directory: where that owner's jobs and `run_command`
 * calls work, and the only part of the host a sandboxed job can write.
 * `<root>/<owner>/` unless the operator maps an owner elsewhere.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** A directory name for an owner that can never be `.`, `..` or hold a `/`. */
export function ownerDirName(owner: string): string {
  return encodeURIComponent(owner).replace(/^\./, '%2E');
}

export class WorkDirs {
  readonly root: string;
  private readonly mapped: ReadonlyMap<string, string>;
  private readonly made = new Set<string>();

  /** @param mapped owner → directory, for owners the operator places themselves. */
  constructor(root: string, mapped: Readonly<Record<string, string>> = {}) {
    this.root = resolve(root);
    this.mapped = new Map(Object.entries(mapped).map(([owner, dir]) => [owner, resolve(dir)]));
  }

  /** The owner's work directory (absolute); see {@link ensure} to create it. */
  of(owner: string): string {
    return this.mapped.get(owner) ?? join(this.root, ownerDirName(owner));
  }

  /** The owner's work directory, created (private to the server's user) if missing. */
  async ensure(owner: string): Promise<string> {
    const dir = this.of(owner);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.made.add(dir);
    }
    return dir;
  }
}

import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { BatonError } from './errors.js';

/** True when `path` is `root` or below it (both absolute and normalised). */
function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * The working directory of a new job: `cwd` resolved against the work dir,
 * which it must not leave, by `..`, an absolute path or a symlink. Checked on
 * the path first, so that a request cannot probe what exists outside, then
 * on the real path. Raises `invalid_request` when it is outside or not a
 * directory.
 *
 * Not a sandbox: the command itself may still `cd` anywhere. It keeps the
 * documented meaning of `cwd` (a folder of the work dir) when the value comes
 * from somewhere less trusted than the command, such as a chosen folder name.
 */
export async function resolveJobCwd(workDir: string, cwd: string | undefined): Promise<string> {
  const path = resolve(workDir, cwd ?? '.');
  const outside = () =>
    new BatonError('invalid_request', `cwd ${cwd ?? path} is outside the work dir`);
  if (!inside(workDir, path)) throw outside();
  const info = await stat(path).catch(() => null);
  if (!info?.isDirectory()) {
    throw new BatonError('invalid_request', `cwd ${cwd ?? path} is not a directory`);
  }
  const [realRoot, real] = await Promise.all([realpath(workDir), realpath(path)]);
  if (!inside(realRoot, real)) throw outside();
  return path;
}

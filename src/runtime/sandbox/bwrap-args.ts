/**
 * The bubblewrap command line of a sandboxed job.
 *
 * The sandbox is built up from an empty root: the system read-only (`/usr`
 * and the parts of `/etc` a shell and its tools read), a private `/tmp`,
 * `/proc` of the job's own PID namespace, a minimal `/dev`, and the owner's
 * work directory read-write at {@link SANDBOX_HOME}. Nothing else of the host
 * exists inside: not the data dir, not other owners' directories, not the
 * server's files. The job runs as an unprivileged user of its own user
 * namespace with every capability dropped, so it cannot remount what it sees.
 *
 * Each file of `/etc` is chosen: the user namespace maps the job's user to
 * the user bwrap runs as, which owns what it owns on the host; a file such
 * as `/etc/shadow` must never be bound.
 *
 * The job's script and the sandbox's passwd and group come in on file
 * descriptors ({@link SANDBOX_FDS}) that the launcher opened before giving up
 * root, so bwrap needs no access to the job's directory in the data dir.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import type { SandboxConfig } from './sandbox-config.js';

/** Where the owner's work directory appears inside the sandbox (also HOME). */
export const SANDBOX_HOME = '/work';
/** The job's user and group inside its user namespace. */
export const SANDBOX_UID = 1000;
/** Where a job's script is bound, read-only, inside the sandbox. */
export const SANDBOX_SCRIPT = '/run/baton/command.sh';
/** The descriptors bwrap reads the script, passwd and group from (opened by the launcher). */
export const SANDBOX_FDS = { script: 3, passwd: 4, group: 5 } as const;

/** What a shell and common tools read from `/etc`; bound when present. */
const SYSTEM_ETC = [
  'alternatives',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'localtime',
  'timezone',
  'nsswitch.conf',
  // Certificates only: /etc/ssl/private holds keys that only root may read.
  'ssl/certs',
  'ssl/openssl.cnf',
  'ca-certificates',
  'ca-certificates.conf',
  'mime.types',
  'protocols',
  'services',
];
/** Name resolution: bound only when the job has the network. */
const NETWORK_ETC = ['resolv.conf', 'hosts', 'host.conf', 'gai.conf'];
/** Top-level system paths that are directories on older layouts and symlinks into /usr on merged ones. */
const ROOT_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

let rootLayout: string[] | null = null;

/** `--symlink` for merged-/usr links, `--ro-bind` for real directories; read once. */
function rootArgs(): string[] {
  if (rootLayout !== null) return rootLayout;
  const args: string[] = [];
  for (const path of ROOT_LINKS) {
    try {
      const info = lstatSync(path);
      if (info.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
      else if (info.isDirectory()) args.push('--ro-bind', path, path);
    } catch {
      // Not on this system.
    }
  }
  rootLayout = args;
  return args;
}

export interface BwrapSpec {
  /** The owner's work directory on the host, bound read-write at {@link SANDBOX_HOME}. */
  workDir: string;
  /** The working directory as the job sees it (under {@link SANDBOX_HOME}). */
  cwd: string;
  /** Whether a script comes in on {@link SANDBOX_FDS}.script, to appear at {@link SANDBOX_SCRIPT}. */
  script: boolean;
  /** Every variable the job gets; the server's environment is cleared. */
  env: Readonly<Record<string, string>>;
}

/** Arguments of `bwrap`, up to and including the `--` before the program. */
export function bwrapArgs(config: SandboxConfig, spec: BwrapSpec): string[] {
  const args = [
    '--unshare-all',
    ...(config.network ? ['--share-net'] : []),
    '--unshare-user',
    // No nested user namespaces: the job gets no capabilities anywhere, not even its own.
    '--disable-userns',
    '--uid',
    String(SANDBOX_UID),
    '--gid',
    String(SANDBOX_UID),
    '--cap-drop',
    'ALL',
    '--hostname',
    'baton-job',
    '--clearenv',
    '--ro-bind',
    '/usr',
    '/usr',
    ...rootArgs(),
  ];
  const etc = config.network ? [...SYSTEM_ETC, ...NETWORK_ETC] : SYSTEM_ETC;
  for (const name of etc) args.push('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
  args.push('--ro-bind-data', String(SANDBOX_FDS.passwd), '/etc/passwd');
  args.push('--ro-bind-data', String(SANDBOX_FDS.group), '/etc/group');
  for (const path of config.readOnlyPaths) args.push('--ro-bind', path, path);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/run');
  args.push('--bind', spec.workDir, SANDBOX_HOME);
  if (spec.script) args.push('--ro-bind-data', String(SANDBOX_FDS.script), SANDBOX_SCRIPT);
  for (const [name, value] of Object.entries(spec.env)) args.push('--setenv', name, value);
  args.push('--chdir', spec.cwd, '--');
  return args;
}

/** The passwd and group files of the sandbox: its one user, and `nobody` for unmapped ids. */
export function sandboxEtcFiles(): { passwd: string; group: string } {
  return {
    passwd:
      `baton:x:${SANDBOX_UID}:${SANDBOX_UID}:Baton job:${SANDBOX_HOME}:/bin/sh\n` +
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    group: `baton:x:${SANDBOX_UID}:\nnogroup:x:65534:\n`,
  };
}

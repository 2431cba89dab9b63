/**
 * What the operator decides about the commands Baton runs (SPEC §4 sandbox):
 * which sandbox, network or not, the variables a job gets, and the resource
 * limits of each of its processes.
 */

/** `bwrap`: bubblewrap namespaces; `none`: the server's own user and filesystem. */
export type SandboxKind = 'bwrap' | 'none';

/**
 * Limits set with `prlimit` on the command. Each is a kernel rlimit: the CPU,
 * memory and file size limits hold for every process of the job, the process
 * limit for the whole job under `bwrap` (its own user namespace counts them).
 * 0 means no limit.
 */
export interface ResourceLimits {
  /** CPU seconds per process (`RLIMIT_CPU`; the process gets SIGXCPU, then SIGKILL). @defaultValue 3600 */
  cpuSeconds: number;
  /** Writable memory per process in bytes (`RLIMIT_DATA`: heap and private mappings). @defaultValue 4 GiB */
  memoryBytes: number;
  /** Processes of the job at once (`RLIMIT_NPROC`). @defaultValue 512 */
  processes: number;
  /** Largest file a process may write, in bytes (`RLIMIT_FSIZE`, output log included). @defaultValue 4 GiB */
  fileBytes: number;
}

export const DEFAULT_RESOURCE_LIMITS: ResourceLimits = {
  cpuSeconds: 3600,
  memoryBytes: 4 * 1024 ** 3,
  processes: 512,
  fileBytes: 4 * 1024 ** 3,
};

export interface SandboxConfig {
  kind: SandboxKind;
  /** Whether a job may reach the network (always true with `none`, which cannot take it away). */
  network: boolean;
  /** Variables a job gets besides PATH, HOME, LANG and TERM, already resolved to values. */
  env: Readonly<Record<string, string>>;
  limits: ResourceLimits;
  /** Host directories a `bwrap` job sees read-only at the same path, besides the system's. */
  readOnlyPaths: readonly string[];
  /**
   * The host user that bwrap and the job run as, when the server runs as
   * root: never root, so that the kernel's per-user process limit holds and
   * a job is nobody on the host even outside its namespaces. Null keeps the
   * server's user (a server that is not root).
   */
  runAs: JobUser | null;
}

/** A host user and group id. */
export interface JobUser {
  uid: number;
  gid: number;
}

/** The runtime's default when nothing is configured: no sandbox, a clean environment, the limits. */
export const NO_SANDBOX: SandboxConfig = {
  kind: 'none',
  network: true,
  env: {},
  limits: DEFAULT_RESOURCE_LIMITS,
  readOnlyPaths: [],
  runAs: null,
};

/** One line for logs and `GET /v1/info`. */
export function describeSandbox(config: SandboxConfig): {
  kind: SandboxKind;
  network: boolean;
  limits: ResourceLimits;
  uid: number | null;
} {
  return {
    kind: config.kind,
    network: config.network,
    limits: config.limits,
    uid: config.runAs?.uid ?? null,
  };
}

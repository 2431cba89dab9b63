/**
 * Limits on jobs whose processes run at once: per server, per owner and per
 * session. A job over a limit is not refused; it waits in `running.queued`
 * and starts, oldest first, when a slot frees up.
 */
export interface JobLimits {
  server: number;
  owner: number;
  session: number;
}

export const DEFAULT_LIMITS: JobLimits = { server: 32, owner: 16, session: 8 };

interface Slot {
  owner: string;
  sessionId: string;
}

export class RunningJobs {
  private readonly slots = new Map<string, Slot>();

  constructor(readonly limits: JobLimits) {}

  /** Why a new job of this owner and session would wait, or null when it can start. */
  blocker(owner: string, sessionId: string): string | null {
    const all = [...this.slots.values()];
    if (all.length >= this.limits.server) {
      return `the server's limit of ${this.limits.server} running jobs`;
    }
    if (all.filter((s) => s.owner === owner).length >= this.limits.owner) {
      return `this owner's limit of ${this.limits.owner} running jobs`;
    }
    if (all.filter((s) => s.sessionId === sessionId).length >= this.limits.session) {
      return `this session's limit of ${this.limits.session} running jobs`;
    }
    return null;
  }

  take(jobId: string, owner: string, sessionId: string): void {
    this.slots.set(jobId, { owner, sessionId });
  }

  free(jobId: string): boolean {
    return this.slots.delete(jobId);
  }

  get size(): number {
    return this.slots.size;
  }
}

/**
 * Runs tasks one after another per key. Every write that concerns a session
 * (its jobs, its lock, its messages) goes through the session's queue, so the
 * version each write expects is the one the previous write left.
 */
export class SerialQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T> | T): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
    // Keep the chain alive whatever this task does; its caller sees the outcome.
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Resolves when everything queued for the key so far has run. */
  idle(key: string): Promise<void> {
    const tail = this.tails.get(key);
    return tail ? tail.then(() => undefined) : Promise.resolve();
  }

  /** Resolves when every queue is empty (used by shutdown). */
  async drain(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}

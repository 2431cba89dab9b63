/**
 * A signal that aborts when `parent` does, or once `ms` have passed.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 the
 * garbage collector may reclaim the timeout signal inside it while a fetch
 * still waits on the composite, and then the deadline never fires (a hung
 * model held its session's lock until the lease ran out). Here the timer
 * holds the controller, so the deadline fires whatever the collector does.
 * Call `clear` when the work is over.
 */
export function deadlineSignal(
  parent: AbortSignal,
  ms: number,
): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(
    () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')),
    ms,
  );
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

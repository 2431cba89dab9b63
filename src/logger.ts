/**
 * The service's logger: pino JSON lines on stdout, or pino-pretty lines with
 * `--pretty`, written synchronously to a destination that can never hold the
 * process hostage.
 *
 * pino's default destination is buffered and flushed when the process exits;
 * with stdout a pipe nobody reads any more (`baton serve | head -2`, a log
 * collector that died), that flush retried forever inside the exit handler,
 * and not even a second SIGTERM could end the process. Here nothing is
 * buffered for the exit, a broken pipe silences the logger (pino's own
 * EPIPE handling), and once shutdown begins a full pipe is given up on
 * instead of waited for.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServiceLogger {
  logger: Logger;
  /** From now on a full stdout drops lines instead of blocking: the process is stopping. */
  stopping(): void;
}

/** How long one stuck write may hold the event loop before its line is dropped. */
const STUCK_WRITE_MS = 5000;

export function createLogger(prettyOutput: boolean, level: LogLevel = 'info'): ServiceLogger {
  let patient = true;
  let stuckSince = 0;
  let lastRetry = 0;
  const destination = pino.destination({
    dest: 1,
    sync: true,
    // Called every 100 ms while a write finds the pipe full. A slow reader is
    // waited for while the service runs, up to a bound (a stuck one must not
    // freeze the event loop, signals included); not at all while it stops.
    retryEAGAIN: () => {
      const now = Date.now();
      if (now - lastRetry > 1000) stuckSince = now;
      lastRetry = now;
      return patient && now - stuckSince < STUCK_WRITE_MS;
    },
  });
  // pino drops the stream on EPIPE itself; any other write error only silences it.
  destination.on('error', () => undefined);
  const logger = prettyOutput
    ? pino({ level }, pretty({ sync: true, colorize: process.stdout.isTTY === true, destination }))
    : pino({ level }, destination);
  return {
    logger,
    stopping: () => {
      patient = false;
    },
  };
}

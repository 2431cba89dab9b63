import { createInspector } from '@statelyai/inspect';
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';
import WebSocket from 'ws';

/** Where `createInspectorServer()` of `@statelyai/inspect/server` listens by default. */
export const DEFAULT_INSPECTOR_URL = 'ws://localhost:8080';

/** Events kept while the inspector is unreachable; the oldest go first. */
const MAX_PENDING = 1_000;

/** The part of a pino logger this module uses. */
export interface InspectionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface InspectionOptions {
  /** `--inspect`: without it nothing connects and actors are not observed. */
  enabled: boolean;
  /** @defaultValue {@link DEFAULT_INSPECTOR_URL} */
  url?: string;
  logger?: InspectionLogger;
  /**
   * Wait before connecting again after the inspector went away.
   * @defaultValue 5000
   */
  reconnectMs?: number;
}

export interface Inspection {
  /** Pass as `createActor(machine, { inspect })`; `undefined` when disabled. */
  inspect: ((event: InspectionEvent) => void) | undefined;
  /** Stops reconnecting and closes the socket. Safe to call twice. */
  close(): void;
}

/**
 * Connects every actor to the Stately inspector (SPEC §7) over a WebSocket.
 * Built on `@statelyai/inspect`'s `createInspector`, which turns XState's
 * inspection events into the inspector's protocol. Its own WebSocket adapter
 * is not used because it retries every 5 s on a timer that `stop()` cannot
 * cancel, so a server whose inspector is down could never shut down cleanly;
 * this one keeps its timer, unrefs it, and stops for good on `close()`.
 */
export function createInspection(options: InspectionOptions): Inspection {
  if (!options.enabled) return { inspect: undefined, close() {} };
  const url = options.url ?? DEFAULT_INSPECTOR_URL;
  const reconnectMs = options.reconnectMs ?? 5_000;
  const logger = options.logger;
  const pending: string[] = [];
  let socket: WebSocket | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // Said once per outage, not on every retry.
  let reachable = true;

  const connect = () => {
    timer = undefined;
    if (closed) return;
    const ws = new WebSocket(url);
    socket = ws;
    ws.on('open', () => {
      reachable = true;
      logger?.info({ url }, 'connected to the Stately inspector');
      for (const message of pending.splice(0)) ws.send(message);
    });
    ws.on('error', (error) => {
      if (closed || !reachable) return;
      reachable = false;
      logger?.warn({ url, err: error.message }, 'Stately inspector unreachable; retrying');
    });
    ws.on('close', () => {
      if (socket === ws) socket = undefined;
      if (closed) return;
      timer = setTimeout(connect, reconnectMs);
      timer.unref();
    });
  };

  const inspector = createInspector({
    start: connect,
    stop() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      pending.length = 0;
      socket?.close();
      socket = undefined;
    },
    send(event: StatelyInspectionEvent) {
      if (closed) return;
      const message = stringify(event);
      if (socket?.readyState === WebSocket.OPEN) socket.send(message);
      else if (pending.push(message) > MAX_PENDING) pending.shift();
    },
  });
  inspector.start();

  return {
    inspect: (event) => inspector.inspect.next?.(event),
    close() {
      if (!closed) inspector.stop();
    },
  };
}

/** JSON that survives what contexts may hold: cycles, bigints, functions. */
function stringify(event: StatelyInspectionEvent): string {
  // The objects on the path from the root to the value being written.
  const ancestors: unknown[] = [];
  return JSON.stringify(event, function (this: unknown, _key: string, value: unknown) {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function') return undefined;
    if (typeof value !== 'object' || value === null) return value;
    while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
    if (ancestors.includes(value)) return '[Circular]';
    ancestors.push(value);
    return value;
  });
}

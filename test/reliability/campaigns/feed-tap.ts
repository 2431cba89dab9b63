/**
 * A WebSocket client of the event feed that hands every frame to whoever
 * listens at the moment: the crash campaign aims kills at frames (the last
 * streamed chunk of a follow-up means its commit is due).
 */

import WebSocket from 'ws';

export type Frame = Record<string, unknown>;

export class FeedTap {
  private ws: WebSocket | null = null;
  listener: ((frame: Frame) => void) | null = null;
  /** Frames seen over the tap's life. */
  frames = 0;

  /** Connects to `baseUrl`'s feed (live events only); errors and closes are ignored. */
  open(baseUrl: string, token: string): void {
    this.close();
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/events?token=${token}`);
    ws.on('message', (data) => {
      this.frames++;
      let frame: unknown;
      try {
        frame = JSON.parse(String(data));
      } catch {
        return;
      }
      if (typeof frame === 'object' && frame !== null) this.listener?.(frame as Frame);
    });
    ws.on('error', () => undefined);
    this.ws = ws;
  }

  close(): void {
    this.ws?.terminate();
    this.ws = null;
  }
}

/** The text of a `turn.delta` frame of a follow-up (a frame with a `jobId`), else null. */
export function followUpDelta(frame: Frame): { jobId: string; delta: string } | null {
  if (frame['type'] !== 'turn.delta' || typeof frame['jobId'] !== 'string') return null;
  const data = frame['data'];
  const delta = typeof data === 'object' && data !== null ? Reflect.get(data, 'delta') : null;
  return typeof delta === 'string' ? { jobId: frame['jobId'], delta } : null;
}

import { describe, expect, it } from 'vitest';
import type { LockView } from '../../src/machines/session.machine.js';
import { systemClock } from '../../src/runtime/clock.js';
import { SessionLocks, type LockHandler } from '../../src/runtime/session-locks.js';

function recorder() {
  const events: string[] = [];
  const handler = (id: string): LockHandler => ({
    granted: () => events.push(`${id}:granted`),
    revoked: (reason) => events.push(`${id}:revoked:${reason}`),
    gone: () => events.push(`${id}:gone`),
  });
  return { events, handler };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('SessionLocks', () => {
  it('stores a lock event for every change, queued before the grant takes effect', async () => {
    const views: LockView[] = [];
    const order: string[] = [];
    const locks = new SessionLocks({
      clock: systemClock,
      leaseMs: 60_000,
      persist: async (_, view) => {
        views.push(view);
        order.push(`persist:${view.lock}`);
      },
    });
    locks.acquire('s', 'followUp', 'j1', {
      granted: () => order.push('granted'),
      revoked: () => {},
      gone: () => {},
    });
    await flush();
    expect(order).toEqual(['persist:busy', 'granted']);
    locks.release('s', 'j1', 'done');
    await flush();
    expect(views.map((v) => v.lock)).toEqual(['busy', 'idle']);
  });

  it('grants the next waiter when the holder releases, live turns first', async () => {
    const { events, handler } = recorder();
    const locks = new SessionLocks({
      clock: systemClock,
      leaseMs: 60_000,
      persist: async () => {},
    });
    locks.acquire('s', 'followUp', 'j1', handler('j1'));
    locks.acquire('s', 'followUp', 'j2', handler('j2'));
    locks.acquire('s', 'live', 't1', handler('t1'));
    expect(locks.view('s').queue).toEqual([
      { kind: 'live', id: 't1' },
      { kind: 'followUp', id: 'j2' },
    ]);
    locks.release('s', 'j1', 'error');
    locks.release('s', 't1', 'done');
    await flush();
    expect(events).toEqual(['j1:granted', 't1:granted', 'j2:granted']);
  });

  it('drops the actor of an idle session and keeps a deleted one gone', async () => {
    const { events, handler } = recorder();
    const locks = new SessionLocks({
      clock: systemClock,
      leaseMs: 60_000,
      persist: async () => {},
    });
    locks.acquire('a', 'live', 't1', handler('t1'));
    locks.acquire('b', 'live', 't2', handler('t2'));
    locks.acquire('b', 'followUp', 'j1', handler('j1'));
    await flush();
    expect(locks.size).toBe(2);
    locks.release('a', 't1', 'done');
    await flush();
    expect(locks.size).toBe(1);
    locks.delete('b');
    await flush();
    expect(locks.size).toBe(0);
    expect(events).toEqual(['t1:granted', 't2:granted', 't2:gone', 'j1:gone']);
    locks.acquire('b', 'followUp', 'j9', handler('j9'));
    await flush();
    expect(events.at(-1)).toBe('j9:gone');
    expect(locks.view('b')).toEqual({ lock: 'idle', holder: null, queue: [] });
  });
});

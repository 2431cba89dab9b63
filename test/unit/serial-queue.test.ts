import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../src/runtime/serial-queue.js';

describe('SerialQueue', () => {
  it('runs the tasks of one key one after another, in order', async () => {
    const queue = new SerialQueue();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
    };
    await Promise.all([queue.run('k', task('a', 20)), queue.run('k', task('b', 1))]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
  });

  it('runs tasks of different keys side by side', async () => {
    const queue = new SerialQueue();
    const log: string[] = [];
    let release: () => void = () => {};
    const blocked = queue.run('a', () => new Promise<void>((r) => (release = r)));
    await queue.run('b', () => void log.push('b ran'));
    expect(log).toEqual(['b ran']);
    release();
    await blocked;
  });

  it('goes on after a task fails, and the failure reaches its caller', async () => {
    const queue = new SerialQueue();
    const failed = queue.run('k', () => Promise.reject(new Error('boom')));
    const next = queue.run('k', () => 'fine');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('fine');
  });

  it('drains every key', async () => {
    const queue = new SerialQueue();
    let done = 0;
    for (const key of ['a', 'b', 'c']) {
      void queue.run(key, () => new Promise<void>((r) => setTimeout(() => (done++, r()), 5)));
    }
    await queue.drain();
    expect(done).toBe(3);
  });
});

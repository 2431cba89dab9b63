import { describe, expect, it } from 'vitest';
import { Feed, type FeedFrame } from '../../src/runtime/feed.js';

const event = (owner: string, seq: number) => ({
  owner,
  seq,
  at: '2026-01-01T00:00:00.000Z',
  type: 'job.state',
  sessionId: 's1',
  jobId: null,
  turnId: null,
  data: { state: 'running' },
});

describe('Feed', () => {
  it('delivers an owner’s events to that owner’s listeners only', () => {
    const feed = new Feed();
    const alice: FeedFrame[] = [];
    const bob: FeedFrame[] = [];
    feed.subscribe('alice', (f) => alice.push(f));
    feed.subscribe('bob', (f) => bob.push(f));
    feed.publish([event('alice', 1), event('bob', 1), event('alice', 2)]);
    expect(alice.map((f) => f.seq)).toEqual([1, 2]);
    expect(bob.map((f) => f.seq)).toEqual([1]);
    expect(alice[0]).toEqual({
      seq: 1,
      at: '2026-01-01T00:00:00.000Z',
      type: 'job.state',
      sessionId: 's1',
      data: { state: 'running' },
    });
  });

  it('keeps delivering when a listener throws, and stops after unsubscribe', () => {
    const feed = new Feed();
    const got: FeedFrame[] = [];
    feed.subscribe('alice', () => {
      throw new Error('socket gone');
    });
    const stop = feed.subscribe('alice', (f) => got.push(f));
    feed.ephemeral('alice', { at: 'now', type: 'turn.delta', data: { delta: 'x' } });
    stop();
    feed.ephemeral('alice', { at: 'now', type: 'turn.delta', data: { delta: 'y' } });
    expect(got.map((f) => f.data['delta'])).toEqual(['x']);
    expect(feed.size()).toBe(1);
  });
});

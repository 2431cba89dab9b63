import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { Feed } from '../../src/runtime/feed.js';
import { FeedTail } from '../../src/runtime/feed-tail.js';
import { SqliteStore } from '../../src/runtime/store/sqlite.js';
import type { Store } from '../../src/runtime/store/store.js';
import { FeedConnection } from '../../src/transport/feed-connection.js';
import { eventOf } from '../store/fixtures.js';

/** Stores one commit of `count` events of `owner` and returns the seq of its last. */
async function commit(store: Store, owner: string, count: number): Promise<number> {
  const events = Array.from({ length: count }, (_, i) => eventOf(owner, `e.${i}`));
  return (await store.commit({ events })).events.at(-1)!.seq;
}

/** The socket side that FeedConnection uses, keeping the seqs it is sent. */
class FakeSocket extends EventEmitter {
  readonly seqs: number[] = [];
  bufferedAmount = 0;
  send(text: string): void {
    const frame = JSON.parse(text) as { seq?: number };
    if (frame.seq !== undefined) this.seqs.push(frame.seq);
  }
  ping(_data: unknown, _mask: unknown, done: () => void): void {
    done();
  }
  close(): void {
    this.emit('close');
  }
}

describe('FeedTail', () => {
  let store: SqliteStore;
  let feed: Feed;
  let tail: FeedTail;
  let errors: unknown[];

  beforeEach(async () => {
    store = new SqliteStore({ path: ':memory:' });
    await store.init();
    feed = new Feed();
    errors = [];
    tail = new FeedTail(store, feed, (error) => errors.push(error));
  });

  afterEach(async () => {
    await tail.drain();
    await store.close();
  });

  /** What a client of the owner is sent live from now on. */
  const listen = (owner: string) => {
    const seqs: number[] = [];
    feed.subscribe(owner, (frame) => seqs.push(frame.seq!));
    return seqs;
  };

  it('sends every event of a commit that a notice names by its last seq only', async () => {
    await commit(store, 'alice', 2);
    // The process starts here; a client is already live when the commit lands.
    await tail.start();
    const seqs = listen('alice');
    const last = await commit(store, 'alice', 3);
    expect(last).toBe(5);
    tail.stored('alice', last);
    await tail.drain();
    expect(seqs).toEqual([3, 4, 5]);
    expect(errors).toEqual([]);
  });

  it('sends the commits whose notices arrive out of order in seq order, once each', async () => {
    await commit(store, 'alice', 2);
    await tail.start();
    const seqs = listen('alice');
    const first = await commit(store, 'alice', 2);
    const second = await commit(store, 'alice', 3);
    tail.stored('alice', second);
    tail.stored('alice', first);
    tail.stored('alice', second);
    await tail.drain();
    expect(seqs).toEqual([3, 4, 5, 6, 7]);
  });

  it('sends all events of an owner that had none when it started, and only that owner', async () => {
    await commit(store, 'bob', 4);
    await tail.start();
    const alice = listen('alice');
    const bob = listen('bob');
    tail.stored('alice', await commit(store, 'alice', 2));
    await tail.drain();
    expect(alice).toEqual([1, 2]);
    expect(bob).toEqual([]);
  });

  it('sends the events of a commit whose notice was lost with the next notice', async () => {
    await tail.start();
    const seqs = listen('alice');
    tail.stored('alice', await commit(store, 'alice', 1));
    await tail.drain();
    await commit(store, 'alice', 2); // its NOTIFY never came (the listening connection was down)
    tail.stored('alice', await commit(store, 'alice', 1));
    await tail.drain();
    expect(seqs).toEqual([1, 2, 3, 4]);
  });

  it('reads the store once for a burst of notices', async () => {
    await tail.start();
    const seqs = listen('alice');
    const read = vi.spyOn(store, 'readEvents');
    const notices: number[] = [];
    for (let i = 0; i < 5; i++) notices.push(await commit(store, 'alice', 2));
    for (const seq of notices) tail.stored('alice', seq);
    await tail.drain();
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('retries a failed read with the next notice, without a gap', async () => {
    await tail.start();
    const seqs = listen('alice');
    const failure = new Error('store unavailable');
    vi.spyOn(store, 'readEvents').mockRejectedValueOnce(failure);
    tail.stored('alice', await commit(store, 'alice', 2));
    await tail.drain();
    expect(errors).toEqual([failure]);
    tail.stored('alice', await commit(store, 'alice', 1));
    await tail.drain();
    expect(seqs).toEqual([1, 2, 3]);
  });

  it('gives a client that replays while a commit lands every seq once, in order', async () => {
    await commit(store, 'alice', 2);
    await tail.start();
    const socket = new FakeSocket();
    // The commit lands right after the client's replay read its last page,
    // so the client gets its events only from the tail.
    const replayStore: Store = Object.create(store) as Store;
    replayStore.readEvents = async (...args) => {
      const page = await store.readEvents(...args);
      tail.stored('alice', await commit(store, 'alice', 3));
      return page;
    };
    const connection = new FeedConnection(socket as unknown as WebSocket, {
      owner: 'alice',
      since: 0,
      sessionIds: null,
      feed,
      store: replayStore,
    });
    await connection.start();
    await tail.drain();
    expect(socket.seqs).toEqual([1, 2, 3, 4, 5]);
    socket.close();
  });
});

import { describe, expect, it } from 'vitest';
import {
  checkInterleaving,
  type OrderedMessage,
  type SessionEvent,
} from '../reliability/campaigns/interleaving.js';

const user: OrderedMessage = { id: 'u', sessionId: 's', role: 'user', meta: { turnId: 't' } };
const followUp: OrderedMessage = {
  id: 'f',
  sessionId: 's',
  role: 'assistant',
  meta: { bgJobId: 'j' },
};
const answer: OrderedMessage = {
  id: 'a',
  sessionId: 's',
  role: 'assistant',
  meta: { turnId: 't' },
};

function created(seq: number, id: string): SessionEvent {
  return { seq, sessionId: 's', type: 'message.created', turnId: null, data: { message: { id } } };
}
function lock(seq: number, holder: string | null): SessionEvent {
  return {
    seq,
    sessionId: 's',
    type: 'session.lock',
    turnId: null,
    data: { holder: holder && { id: holder } },
  };
}
function turn(seq: number, type: 'turn.started' | 'turn.finished'): SessionEvent {
  return { seq, sessionId: 's', type, turnId: 't', data: {} };
}

describe('the interleaving check of the campaigns', () => {
  it('accepts a follow-up that held the lock before the user message came', () => {
    const events = [
      lock(1, 'j'),
      created(2, 'u'),
      created(3, 'f'),
      lock(4, 't'),
      turn(5, 'turn.started'),
      created(6, 'a'),
      turn(7, 'turn.finished'),
    ];
    expect(checkInterleaving([user, followUp, answer], events)).toEqual({
      interleavings: [],
      arrivedDuringFollowUp: 1,
      turnsCut: 0,
    });
  });

  it('flags a follow-up that took the lock after the user message, ahead of its turn', () => {
    const events = [
      created(1, 'u'),
      lock(2, 'j'),
      created(3, 'f'),
      lock(4, 't'),
      turn(5, 'turn.started'),
      created(6, 'a'),
      turn(7, 'turn.finished'),
    ];
    expect(checkInterleaving([user, followUp, answer], events).interleavings).toEqual([
      'u < f < a',
    ]);
  });

  it('flags a follow-up written while a turn runs', () => {
    const events = [
      created(1, 'u'),
      lock(2, 't'),
      turn(3, 'turn.started'),
      created(4, 'a'),
      created(5, 'f'),
      turn(6, 'turn.finished'),
    ];
    expect(checkInterleaving([user, answer, followUp], events).interleavings).toEqual([
      'f inside turn t',
    ]);
  });

  it('counts a turn cut by a kill, and ignores a turn that never finished', () => {
    const events = [
      created(1, 'u'),
      lock(2, 't'),
      turn(3, 'turn.started'),
      lock(4, 'j'),
      created(5, 'f'),
    ];
    expect(checkInterleaving([user, followUp], events)).toEqual({
      interleavings: [],
      arrivedDuringFollowUp: 0,
      turnsCut: 1,
    });
  });
});

import { describe, expect, it } from 'vitest';
import { lockProblems } from '../reliability/campaigns/races-check.js';

type Rec = Parameters<typeof lockProblems>[0][number];
const rec = (instance: number, id: string, event: Rec['event']): Rec => ({
  instance,
  sessionId: 's',
  kind: id.startsWith('t') ? 'live' : 'followUp',
  id,
  event,
  at: 0,
});

describe('the lock check of the races campaign', () => {
  it('passes holders that take turns and release', () => {
    const records = [
      rec(0, 't1', 'granted'),
      rec(0, 't1', 'released'),
      rec(0, 'j1', 'granted'),
      rec(0, 'j1', 'released'),
    ];
    expect(lockProblems(records, 0)).toEqual({ problems: [], grants: 2 });
  });

  it('flags a grant while another holder has not released', () => {
    const records = [
      rec(0, 't1', 'granted'),
      rec(0, 'j1', 'granted'),
      rec(0, 't1', 'released'),
      rec(0, 'j1', 'released'),
    ];
    expect(lockProblems(records, 0).problems).toEqual(['session s: j1 granted while t1 holds it']);
  });

  it('flags a lock never released in the last instance, not one dropped by a restart', () => {
    const records = [
      rec(0, 'j1', 'granted'),
      rec(1, 'j1', 'granted'),
      rec(1, 'j1', 'gone'),
      rec(1, 't2', 'granted'),
    ];
    expect(lockProblems(records, 1).problems).toEqual(['1/s: t2 never released']);
  });
});

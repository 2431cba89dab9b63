import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  isSameProcessAlive,
  liveGroupMembers,
  parseProcStat,
  processStartTime,
  readBootId,
} from '../../src/runtime/jobs/proc-identity.js';
import { waitFor } from './helpers.js';

describe('proc identity', () => {
  it('parses a stat line whose command name holds spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'S';
    const stat = parseProcStat(`4242 (evil) (name ) ${fields.join(' ')}\n`);
    expect(stat).toEqual({ pid: 4242, state: 'S', ppid: 4, pgrp: 5, session: 6, startTicks: '22' });
  });

  it('rejects a line that is not a stat line', () => {
    expect(parseProcStat('garbage')).toBeNull();
  });

  it('names this process by boot id and start time, stably', () => {
    const id = processStartTime(process.pid);
    expect(id).toBe(`${readBootId()}:${id?.split(':')[1]}`);
    expect(readBootId()).toMatch(/^[0-9a-f-]{36}$/);
    expect(processStartTime(process.pid)).toBe(id);
    expect(isSameProcessAlive(process.pid, id!)).toBe(true);
    expect(isSameProcessAlive(process.pid, `${id}1`)).toBe(false);
  });

  it('finds no process for a pid that does not exist', () => {
    expect(processStartTime(2 ** 22 + 1)).toBeNull();
    expect(isSameProcessAlive(2 ** 22 + 1, 'x:1')).toBe(false);
  });

  it('lists the running members of a group and none once it is killed', async () => {
    const child = spawn('/bin/sh', ['-c', 'sleep 100 & sleep 100 & wait'], {
      detached: true,
      stdio: 'ignore',
    });
    const pgid = child.pid!;
    try {
      await waitFor(() => liveGroupMembers(pgid).length === 3, 2000, 'three members');
      expect(liveGroupMembers(pgid)).toContain(pgid);
    } finally {
      process.kill(-pgid, 'SIGKILL');
    }
    // The sleeps stay zombies if init does not reap them; they must not count.
    await waitFor(() => liveGroupMembers(pgid).length === 0, 2000, 'the group to die');
  });
});

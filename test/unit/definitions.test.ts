import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { machineDefinitions } from '../../src/machines/definitions.js';
import * as jobModule from '../../src/machines/job.machine.js';
import * as sessionModule from '../../src/machines/session.machine.js';

const JOB_STATES = [
  'running',
  'completed',
  'awaitingIdleSession',
  'continuing',
  'retrying',
  'followedUp',
  'failed',
  'cancelled',
  'skipped',
];

function statesOf(config: unknown): string[] {
  if (typeof config !== 'object' || config === null || !('states' in config)) return [];
  const states = config.states;
  return typeof states === 'object' && states !== null ? Object.keys(states) : [];
}

describe('machineDefinitions', () => {
  it('holds the nine job states and the session states', () => {
    const definitions = machineDefinitions();
    expect(Object.keys(definitions).sort()).toEqual(['job', 'session']);
    expect(statesOf(definitions['job']?.config).sort()).toEqual([...JOB_STATES].sort());
    expect(statesOf(definitions['session']?.config).sort()).toEqual(['busy', 'deleted', 'idle']);
    expect(definitions['job']?.implementations.actors).toEqual(['followUp']);
    expect(definitions['session']?.implementations.actions).toEqual(
      expect.arrayContaining(['lockGranted', 'lockRevoked', 'sessionGone']),
    );
  });

  it('is plain JSON, the same on every call', () => {
    const text = JSON.stringify(machineDefinitions());
    expect(JSON.parse(text)).toEqual(machineDefinitions());
    expect(text).toContain('"guard":"attemptsRemain"');
    expect(text).toContain('"type":"xstate.assign"');
  });

  it('matches stately.config.json, machine by machine', async () => {
    const config: unknown = JSON.parse(
      await readFile(new URL('../../stately.config.json', import.meta.url), 'utf8'),
    );
    expect(config).toMatchObject({
      inspector: { enabledFlag: '--inspect', url: expect.stringMatching(/^wss?:\/\//) },
      machines: [
        {
          id: 'job',
          source: 'src/machines/job.machine.ts',
          export: 'jobMachine',
          factory: 'createJobMachine',
        },
        {
          id: 'session',
          source: 'src/machines/session.machine.ts',
          export: 'sessionMachine',
          factory: 'createSessionMachine',
        },
      ],
    });
    expect(jobModule.jobMachine.id).toBe('job');
    expect(typeof jobModule.createJobMachine).toBe('function');
    expect(sessionModule.sessionMachine.id).toBe('session');
    expect(typeof sessionModule.createSessionMachine).toBe('function');
  });
});

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JOB_STATES, createJobMachine } from '../../src/machines/job.machine.js';

const machinesDir = fileURLToPath(new URL('../../src/machines/', import.meta.url));

/** Every module specifier a file imports or re-exports, static or dynamic. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) if (match[1]) found.push(match[1]);
  }
  return found;
}

describe('machine files', () => {
  it('gives the job machine exactly the nine top-level states of SPEC §2', () => {
    const spec = [
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
    const states = Object.keys(createJobMachine().root.states);
    expect([...states].sort()).toEqual([...spec].sort());
    expect([...JOB_STATES].sort()).toEqual([...spec].sort());
  });

  it('imports nothing but xstate and other files of src/machines', async () => {
    const files = (await readdir(machinesDir)).filter((name) => name.endsWith('.ts'));
    expect(files).toEqual(expect.arrayContaining(['job.machine.ts', 'session.machine.ts']));
    for (const file of files) {
      const source = await readFile(path.join(machinesDir, file), 'utf8');
      const found = specifiers(source);
      if (file === 'job.machine.ts') {
        expect(found).toEqual(expect.arrayContaining(['xstate', './retry-delay.js']));
      }
      for (const specifier of found) {
        if (specifier === 'xstate') continue;
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\//);
        const target = path.resolve(machinesDir, specifier);
        expect(path.dirname(target), `${file} imports ${specifier}`).toBe(
          path.resolve(machinesDir),
        );
      }
    }
  });
});

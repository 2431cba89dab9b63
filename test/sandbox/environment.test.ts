import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  jobEnvironment,
  JobEnvError,
  parseJobEnv,
  SANDBOX_PATH,
} from '../../src/runtime/sandbox/job-env.js';
import { ownerDirName, WorkDirs } from '../../src/runtime/sandbox/work-dirs.js';

const server = {
  PATH: '/opt/tools/bin:/usr/bin',
  LANG: 'de_DE.UTF-8',
  PIP_INDEX_URL: 'http://mirror.local/simple',
  BATON_TOKENS: 'alice:tokA',
  OPENAI_API_KEY: 'sk-1',
  LEAKY: 'prefix-tokA-suffix',
};

describe('jobEnvironment', () => {
  it('gives a job PATH, HOME, LANG, TERM and the named variables, nothing of the server else', () => {
    expect(jobEnvironment('bwrap', '/work', { PIP_INDEX_URL: 'x' }, server)).toEqual({
      PATH: SANDBOX_PATH,
      HOME: '/work',
      LANG: 'de_DE.UTF-8',
      TERM: 'dumb',
      PIP_INDEX_URL: 'x',
    });
    // On the host the server's tools are where its PATH says.
    expect(jobEnvironment('none', '/data/work/alice', {}, server)['PATH']).toBe(server.PATH);
    expect(jobEnvironment('none', '/h', {}, {})).toMatchObject({ LANG: 'C.UTF-8' });
  });
});

describe('parseJobEnv', () => {
  const parse = (...entries: string[]) => parseJobEnv(entries, ['tokA', 'sk-1'], server);

  it('copies named variables and takes NAME=VALUE as given', () => {
    expect(parse('PIP_INDEX_URL', 'MODE=a=b,c')).toEqual({
      PIP_INDEX_URL: 'http://mirror.local/simple',
      MODE: 'a=b,c',
    });
  });

  it.each([
    ['BATON_TOKENS', /server's own secrets/],
    ['BATON_ANYTHING=1', /server's own secrets/],
    ['OPENAI_API_KEY', /server's own secrets/],
    ['PATH=/x', /sets PATH itself/],
    ['HOME', /sets HOME itself/],
    ['NOT_SET_HERE', /no such variable/],
    ['LEAKY', /holds a token or the agent key/],
    ['X=sk-1', /holds a token or the agent key/],
    ['1BAD', /is not NAME or NAME=VALUE/],
    ['A-B=1', /is not NAME or NAME=VALUE/],
  ])('refuses %s', (entry, message) => {
    expect(() => parse(entry)).toThrow(JobEnvError);
    expect(() => parse(entry)).toThrow(message);
  });
});

describe('WorkDirs', () => {
  it('gives each owner a directory of its own name that cannot climb out of the root', () => {
    const dirs = new WorkDirs('/data/work', { carol: '/srv/carol' });
    expect(dirs.of('alice')).toBe('/data/work/alice');
    expect(dirs.of('carol')).toBe('/srv/carol');
    expect(ownerDirName('..')).toBe('%2E.');
    expect(ownerDirName('.')).toBe('%2E');
    expect(ownerDirName('a/../b')).toBe('a%2F..%2Fb');
    expect(dirs.of('..')).toBe('/data/work/%2E.');
  });
});

describe('WorkDirs for a job user other than the server', () => {
  it('says which directory the job user cannot pass through', async () => {
    const top = mkdtempSync(join(tmpdir(), 'baton-reach-')); // mode 700
    try {
      mkdirSync(join(top, 'data'));
      const dirs = new WorkDirs(join(top, 'data', 'work'), {}, { uid: 65534, gid: 65534 });
      await expect(dirs.ensure('alice')).rejects.toThrow(
        `jobs run as uid 65534, which cannot pass through ${top} (mode 700)`,
      );
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
});

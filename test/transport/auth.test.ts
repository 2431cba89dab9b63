import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bearerToken,
  loadAuth,
  parseTokenList,
  TokenAuth,
  TokenConfigError,
} from '../../src/transport/auth.js';

describe('TokenAuth', () => {
  const auth = new TokenAuth([
    { owner: 'alice', token: 'tokA' },
    { owner: 'bob', token: 'tokB' },
    { owner: 'alice', token: 'tokA2' },
  ]);

  it('finds the owner of each token', () => {
    expect(auth.ownerOf('tokA')).toBe('alice');
    expect(auth.ownerOf('tokA2')).toBe('alice');
    expect(auth.ownerOf('tokB')).toBe('bob');
  });

  it('refuses unknown, empty and missing tokens and near misses', () => {
    for (const token of ['tokC', '', null, undefined, 'tokA ', 'toka', 'tokAtokA']) {
      expect(auth.ownerOf(token)).toBeNull();
    }
  });

  it('reads Bearer headers only', () => {
    expect(auth.ownerOfHeader('Bearer tokB')).toBe('bob');
    expect(auth.ownerOfHeader('bearer tokB')).toBe('bob');
    expect(auth.ownerOfHeader('Basic tokB')).toBeNull();
    expect(auth.ownerOfHeader('tokB')).toBeNull();
    expect(auth.ownerOfHeader(undefined)).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
  });

  it('lists each owner once', () => {
    expect(auth.owners()).toEqual(['alice', 'bob']);
  });

  it('refuses a token given twice, a bad owner and an empty table', () => {
    expect(
      () =>
        new TokenAuth([
          { owner: 'a', token: 't' },
          { owner: 'b', token: 't' },
        ]),
    ).toThrow(TokenConfigError);
    expect(() => new TokenAuth([{ owner: 'a b', token: 't' }])).toThrow(TokenConfigError);
    expect(() => new TokenAuth([{ owner: 'a', token: 'has space' }])).toThrow(TokenConfigError);
    expect(() => new TokenAuth([])).toThrow(TokenConfigError);
  });
});

describe('parseTokenList', () => {
  it('reads owner:token pairs', () => {
    expect(parseTokenList('alice:tokA, bob:tok:B ,')).toEqual([
      { owner: 'alice', token: 'tokA' },
      { owner: 'bob', token: 'tok:B' },
    ]);
  });

  it('refuses entries without an owner or a token', () => {
    for (const text of ['alice', ':tok', 'alice:', ',,']) {
      expect(() => parseTokenList(text), text).toThrow(TokenConfigError);
    }
  });
});

describe('loadAuth', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('makes a token at first start, keeps it with mode 0600 and reuses it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-auth-'));
    const first = await loadAuth({ dataDir: dir });
    expect(first.source).toBe('generated');
    expect(first.defaultToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const file = join(dir, 'token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first.defaultToken);
    const second = await loadAuth({ dataDir: dir });
    expect(second.source).toBe('file');
    expect(second.defaultToken).toBe(first.defaultToken);
    expect(second.auth.ownerOf(first.defaultToken)).toBe('default');
  });

  it('tightens the permissions of a kept token file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-auth-'));
    writeFileSync(join(dir, 'token'), 'kept-token\n', { mode: 0o644 });
    const loaded = await loadAuth({ dataDir: dir });
    expect(loaded.defaultToken).toBe('kept-token');
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
  });

  it('uses --token and BATON_TOKENS together and writes no file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-auth-'));
    const loaded = await loadAuth({ dataDir: dir, token: 'flagtok', tokens: 'alice:tokA' });
    expect(loaded.source).toBe('flag');
    expect(loaded.defaultToken).toBe('flagtok');
    expect(loaded.auth.ownerOf('flagtok')).toBe('default');
    expect(loaded.auth.ownerOf('tokA')).toBe('alice');
    expect(() => statSync(join(dir!, 'token'))).toThrow();
  });

  it('uses BATON_TOKENS alone with no default token', async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-auth-'));
    const loaded = await loadAuth({ dataDir: dir, tokens: 'alice:tokA,bob:tokB' });
    expect(loaded.source).toBe('env');
    expect(loaded.defaultToken).toBeNull();
    expect(loaded.auth.owners()).toEqual(['alice', 'bob']);
  });
});

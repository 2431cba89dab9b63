import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  completeUtf8Length,
  readOutputRange,
  sliceOutput,
} from '../../src/runtime/jobs/output-range.js';

describe('output ranges', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-range-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('never ends a read inside a UTF-8 character', () => {
    const euro = Buffer.from('a€', 'utf8'); // 61 e2 82 ac
    expect(completeUtf8Length(euro)).toBe(4);
    expect(completeUtf8Length(euro.subarray(0, 3))).toBe(1);
    expect(completeUtf8Length(euro.subarray(0, 2))).toBe(1);
    expect(completeUtf8Length(Buffer.from('😀', 'utf8').subarray(0, 3))).toBe(0);
    expect(completeUtf8Length(Buffer.from('é', 'utf8'))).toBe(2);
  });

  it('leaves an unfinished character of a growing log for the next read', async () => {
    const path = join(dir, 'growing.log');
    writeFileSync(path, Buffer.concat([Buffer.from('x€'), Buffer.from('😀').subarray(0, 2)]));
    expect(await readOutputRange(path, 0, 1024, true)).toEqual({
      output: 'x€',
      since: 0,
      next: 4,
      size: 6,
    });
    // Once the log cannot grow, the bytes are what they are: the reader is never stuck.
    const final = await readOutputRange(path, 4, 1024, false);
    expect(final).toMatchObject({ since: 4, next: 6, size: 6 });
    expect(final?.output).toBe('\ufffd');
    expect(await readOutputRange(join(dir, 'missing.log'), 0, 10, true)).toBeNull();
    expect(await readOutputRange(path, 99, 10, true)).toEqual({
      output: '',
      since: 6,
      next: 6,
      size: 6,
    });
  });

  it('cuts a stored output into pages on character boundaries', () => {
    const bytes = Buffer.from('ab€cd');
    expect(sliceOutput(bytes, 0, 4)).toEqual({ output: 'ab', since: 0, next: 2, size: 7 });
    expect(sliceOutput(bytes, 2, 4)).toEqual({ output: '€c', since: 2, next: 6, size: 7 });
    expect(sliceOutput(bytes, 6, 4)).toEqual({ output: 'd', since: 6, next: 7, size: 7 });
  });
});

import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  headCut,
  joinHeadTail,
  readCappedFile,
  readHeadTail,
  tailSkip,
  truncationMarker,
} from '../../src/runtime/jobs/output-cap.js';
import type { ByteSource } from '../../src/runtime/jobs/output-cap.js';
import { cleanup, tempDir } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  await cleanup([], [], dirs);
});

const enc = new TextEncoder();

/** A source over bytes in memory that counts what it is asked for. */
function countingSource(bytes: Uint8Array): ByteSource & { bytesRead: number } {
  const src = {
    bytesRead: 0,
    size: async () => bytes.length,
    read: async (buffer: Uint8Array, length: number, position: number) => {
      const chunk = bytes.subarray(position, position + length);
      buffer.set(chunk, 0);
      src.bytesRead += chunk.length;
      return chunk.length;
    },
  };
  return src;
}

describe('output cap', () => {
  it('keeps short output whole', async () => {
    const capped = await readHeadTail(countingSource(enc.encode('short\n')), {
      headBytes: 4,
      tailBytes: 4,
    });
    expect(capped).toEqual({ output: 'short\n', truncated: false, totalBytes: 6, omittedBytes: 0 });
  });

  it('keeps head and tail with a marker naming the bytes left out', async () => {
    const bytes = enc.encode('0123456789abcdefghij');
    const src = countingSource(bytes);
    const capped = await readHeadTail(src, { headBytes: 3, tailBytes: 4 });
    expect(capped.output).toBe(`012${truncationMarker(13)}ghij`);
    expect(capped).toMatchObject({ truncated: true, totalBytes: 20, omittedBytes: 13 });
    expect(src.bytesRead).toBe(7);
  });

  it('reads only head plus tail bytes of a 5 MB source', async () => {
    const bytes = new Uint8Array(5_000_000).fill(0x61);
    const src = countingSource(bytes);
    const capped = await readHeadTail(src);
    expect(src.bytesRead).toBe(8000);
    expect(capped.omittedBytes).toBe(5_000_000 - 8000);
  });

  it('reads only the head and tail of a 1 GiB file', async () => {
    const dir = await tempDir(dirs);
    const path = join(dir, 'output.log');
    const fh = await open(path, 'w');
    // Sparse: a gigabyte of zeros that costs no disk and no time to make.
    await fh.truncate(1024 ** 3);
    await fh.write('END', 1024 ** 3 - 3);
    await fh.close();
    const capped = await readCappedFile(path, { headBytes: 10, tailBytes: 5 });
    // NUL bytes come back as U+FFFD: not every store can hold NUL in text.
    expect(capped.output).toBe(
      `${'\uFFFD'.repeat(10)}${truncationMarker(1024 ** 3 - 15)}\uFFFD\uFFFDEND`,
    );
  });

  it('reads a missing file as empty output', async () => {
    const dir = await tempDir(dirs);
    expect(await readCappedFile(join(dir, 'none.log'))).toMatchObject({
      output: '',
      truncated: false,
    });
  });

  it('does not split a multibyte character at either cut', async () => {
    // "€" is E2 82 AC: the head cut lands after E2 82, the tail cut before 82 AC.
    // 21 bytes in all; "ab" and "z" are kept, the 18 between are left out.
    const text = 'ab€cd-middle-xy€z';
    const dir = await tempDir(dirs);
    const path = join(dir, 'out.log');
    await writeFile(path, text);
    const capped = await readCappedFile(path, { headBytes: 4, tailBytes: 3 });
    expect(capped.output).toBe(`ab${truncationMarker(18)}z`);
    expect(capped.output).not.toContain('\uFFFD');
  });

  it('finds where a head or tail would split a character', () => {
    expect(headCut(Uint8Array.of(0x61, 0xe2, 0x82))).toBe(1);
    expect(headCut(Uint8Array.of(0x61, 0xe2, 0x82, 0xac))).toBe(4);
    expect(headCut(Uint8Array.of(0x61, 0xf0, 0x9f, 0x98))).toBe(1);
    expect(headCut(Uint8Array.of(0x61, 0xff))).toBe(2);
    expect(tailSkip(Uint8Array.of(0x82, 0xac, 0x61))).toBe(2);
    expect(tailSkip(Uint8Array.of(0x80, 0x80, 0x80, 0x80))).toBe(0);
  });

  it('keeps every valid UTF-8 text as exact head and tail pieces, without replacement characters', () => {
    fc.assert(
      fc.property(
        // NUL is the one valid character that is replaced (see the NUL test below).
        fc.string({ unit: 'binary', maxLength: 60 }).filter((text) => !text.includes('\0')),
        fc.nat(40),
        fc.nat(40),
        (text, h, t) => {
          const bytes = enc.encode(text);
          const fits = h + t >= bytes.length;
          const capped = fits
            ? joinHeadTail(bytes, new Uint8Array(0), bytes.length)
            : joinHeadTail(bytes.subarray(0, h), bytes.subarray(bytes.length - t), bytes.length);
          if (!capped.truncated) return capped.output === text;
          const [first, last] = capped.output.split(truncationMarker(capped.omittedBytes));
          return (
            !capped.output.includes('\uFFFD') &&
            text.startsWith(first ?? '\0') &&
            text.endsWith(last ?? '\0') &&
            enc.encode(first).length + enc.encode(last).length + capped.omittedBytes ===
              bytes.length
          );
        },
      ),
    );
  });

  it('decodes arbitrary bytes without throwing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(32), fc.nat(32), (bytes, h, t) => {
        const head = bytes.subarray(0, Math.min(h, bytes.length));
        const tail = bytes.subarray(Math.max(head.length, bytes.length - t));
        const capped = joinHeadTail(head, tail, bytes.length);
        return typeof capped.output === 'string' && capped.omittedBytes >= 0;
      }),
    );
  });
});

describe('output with NUL bytes', () => {
  it('stores NUL as the replacement character, so every store can hold it', () => {
    const bytes = new Uint8Array([0x61, 0x00, 0x62]);
    expect(joinHeadTail(bytes, new Uint8Array(), bytes.length).output).toBe('a\uFFFDb');
  });
});

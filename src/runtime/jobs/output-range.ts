/**
 * Reads a job's output by byte offset, for a client that follows it while it
 * runs: each answer says where the next read starts, and never ends in the
 * middle of a UTF-8 character (the rest of it comes with the next read).
 */
import { open } from 'node:fs/promises';

/** A part of a job's output. Offsets are bytes of the output as written. */
export interface OutputChunk {
  /** The text from `since` up to `next`. */
  output: string;
  since: number;
  /** Where the following read starts. */
  next: number;
  /** Bytes of output so far. */
  size: number;
}

/** Bytes of `buf` that end on a character boundary: a trailing incomplete UTF-8 sequence is left out. */
export function completeUtf8Length(buf: Uint8Array): number {
  const end = buf.length;
  // A sequence is at most 4 bytes, so only the last 3 can start an unfinished one.
  for (let i = end - 1; i >= Math.max(0, end - 3); i--) {
    const byte = buf[i] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: look further back
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length > end ? i : end;
  }
  return end;
}

/** The part of `bytes` from `since`, at most `maxBytes` long. */
export function sliceOutput(bytes: Uint8Array, since: number, maxBytes: number): OutputChunk {
  const size = bytes.length;
  const start = Math.min(since, size);
  const part = bytes.subarray(start, Math.min(size, start + maxBytes));
  const whole = start + maxBytes >= size ? part.length : completeUtf8Length(part);
  return {
    output: Buffer.from(part.subarray(0, whole)).toString('utf8'),
    since: start,
    next: start + whole,
    size,
  };
}

/**
 * Reads `[since, since + maxBytes)` of the file at `path`; null when there is
 * no such file. A `since` past the end reads nothing (`next` is the end).
 * While the file may still grow, an unfinished character at the end is left
 * for the next read; once it cannot, the bytes are given as they are.
 */
export async function readOutputRange(
  path: string,
  since: number,
  maxBytes: number,
  growing: boolean,
): Promise<OutputChunk | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.min(since, size);
    const length = Math.min(maxBytes, size - start);
    const buf = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const { bytesRead } = await handle.read(buf, read, length - read, start + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    const part = buf.subarray(0, read);
    const whole = growing || start + read < size ? completeUtf8Length(part) : read;
    return {
      output: part.subarray(0, whole).toString('utf8'),
      since: start,
      next: start + whole,
      size,
    };
  } finally {
    await handle.close();
  }
}

/**
 * The head and tail of a job's output, read without reading the whole file.
 *
 * A job may print a gigabyte; the agent and the API only ever need its first
 * and last few kilobytes. The reader asks its source for exactly those byte
 * ranges, and the joining step is pure so that it can be tested on bytes.
 */
import { open } from 'node:fs/promises';

/** Default number of bytes kept from the start of the output. */
export const DEFAULT_HEAD_BYTES = 2000;
/** Default number of bytes kept from the end of the output. */
export const DEFAULT_TAIL_BYTES = 6000;

/** Output cut to its head and tail. */
export interface CappedOutput {
  /** Head, marker line (when truncated) and tail, decoded as UTF-8 with replacement characters. */
  output: string;
  /** True when bytes between head and tail were left out. */
  truncated: boolean;
  /** Size of the whole output in bytes. */
  totalBytes: number;
  /** Bytes left out between head and tail (0 when not truncated). */
  omittedBytes: number;
}

/** How many bytes to keep from each end. */
export interface CapOptions {
  /** @defaultValue 2000 */
  headBytes?: number;
  /** @defaultValue 6000 */
  tailBytes?: number;
}

/**
 * Random access to bytes, so that the reader can be tested with a source that
 * counts what it was asked for. A file handle is the real one.
 */
export interface ByteSource {
  /** Current size in bytes. */
  size(): Promise<number>;
  /** Reads up to `length` bytes at `position` into `buffer` from offset 0; returns the count read. */
  read(buffer: Uint8Array, length: number, position: number): Promise<number>;
}

/** The line put between head and tail, naming how many bytes were left out. */
export function truncationMarker(omittedBytes: number): string {
  return `\n…[truncated ${omittedBytes} bytes]…\n`;
}

// Non-fatal: invalid bytes become U+FFFD instead of throwing. ignoreBOM keeps a
// leading byte-order mark as text instead of silently dropping it.
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Decodes output for storage. NUL becomes U+FFFD like any other byte that is
 * not text: PostgreSQL's text type cannot hold it, and a job's output must be
 * storable in every store.
 */
function decode(bytes: Uint8Array): string {
  return decoder.decode(bytes).replaceAll('\u0000', '\uFFFD');
}

/** Length of the UTF-8 sequence that a lead byte starts, or 0 for a continuation or invalid byte. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

/**
 * How many bytes of `head` to keep so that it does not end inside a multibyte
 * character: a character cut by the head boundary is moved to the omitted part
 * rather than shown as a replacement character. Invalid bytes are left alone
 * (the decoder replaces them).
 */
export function headCut(head: Uint8Array): number {
  const n = head.length;
  // A sequence is at most 4 bytes, so its lead byte is among the last 4.
  for (let back = 1; back <= Math.min(4, n); back++) {
    const byte = head[n - back] ?? 0;
    if (isContinuation(byte)) continue;
    const len = sequenceLength(byte);
    // Complete, ASCII, or an invalid lead that no later byte could complete.
    if (len === 0 || len <= back) return n;
    return n - back;
  }
  return n;
}

/**
 * How many leading bytes of `tail` to skip so that it does not start in the
 * middle of a multibyte character (at most 3 continuation bytes).
 */
export function tailSkip(tail: Uint8Array): number {
  let skip = 0;
  while (skip < 3 && skip < tail.length && isContinuation(tail[skip] ?? 0)) skip++;
  // More than 3 continuation bytes in a row is not a cut character but
  // invalid data: keep it and let the decoder replace it.
  if (skip === 3 && skip < tail.length && isContinuation(tail[skip] ?? 0)) return 0;
  return skip;
}

/**
 * Joins the bytes read from both ends into the capped text. Pure.
 *
 * @param head - the first bytes of the output (the whole output when it fits)
 * @param tail - the last bytes of the output; empty when `head` is the whole output
 * @param totalBytes - size of the whole output
 */
export function joinHeadTail(head: Uint8Array, tail: Uint8Array, totalBytes: number): CappedOutput {
  if (head.length + tail.length >= totalBytes) {
    const whole = new Uint8Array(head.length + tail.length);
    whole.set(head, 0);
    whole.set(tail, head.length);
    return { output: decode(whole), truncated: false, totalBytes, omittedBytes: 0 };
  }
  const keepHead = headCut(head);
  const skipTail = tailSkip(tail);
  const headPart = head.subarray(0, keepHead);
  const tailPart = tail.subarray(skipTail);
  const omittedBytes = totalBytes - headPart.length - tailPart.length;
  return {
    output: decode(headPart) + truncationMarker(omittedBytes) + decode(tailPart),
    truncated: true,
    totalBytes,
    omittedBytes,
  };
}

/** Reads exactly `length` bytes at `position` unless the source ends first. */
async function readRange(
  source: ByteSource,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const chunk = buffer.subarray(filled);
    const n = await source.read(chunk, length - filled, position + filled);
    if (n <= 0) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}

/**
 * Reads the head and tail of a source, asking it for at most
 * `headBytes + tailBytes` bytes in all, whatever its size.
 */
export async function readHeadTail(
  source: ByteSource,
  opts: CapOptions = {},
): Promise<CappedOutput> {
  const headBytes = Math.max(0, Math.floor(opts.headBytes ?? DEFAULT_HEAD_BYTES));
  const tailBytes = Math.max(0, Math.floor(opts.tailBytes ?? DEFAULT_TAIL_BYTES));
  // The size is read once: a running job may still append, and the ranges
  // must describe one consistent view of the file.
  const size = await source.size();
  if (size <= headBytes + tailBytes) {
    const whole = await readRange(source, 0, size);
    return joinHeadTail(whole, new Uint8Array(0), whole.length);
  }
  const head = await readRange(source, 0, headBytes);
  const tail = await readRange(source, size - tailBytes, tailBytes);
  return joinHeadTail(head, tail, size);
}

/**
 * Reads the capped head and tail of a file through a file handle. A missing
 * file is empty output (a job that has not printed yet may not have one).
 */
export async function readCappedFile(path: string, opts: CapOptions = {}): Promise<CappedOutput> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { output: '', truncated: false, totalBytes: 0, omittedBytes: 0 };
    }
    throw err;
  }
  const fh = handle;
  try {
    return await readHeadTail(
      {
        size: async () => (await fh.stat()).size,
        read: async (buffer, length, position) =>
          (await fh.read(buffer, 0, length, position)).bytesRead,
      },
      opts,
    );
  } finally {
    await fh.close();
  }
}

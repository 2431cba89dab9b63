/**
 * Bearer tokens, one or more per owner (SPEC §4 Auth). HTTP calls send
 * `Authorization: Bearer <token>`; the WebSocket feed takes `?token=`.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One token and the owner it acts for. */
export interface TokenEntry {
  owner: string;
  token: string;
}

/** Where the tokens of a running service came from. */
export type TokenSource = 'env' | 'flag' | 'file' | 'generated';

/** The owner a token acts for; also used as the `default` owner of `--token`. */
export const DEFAULT_OWNER = 'default';

/** Name of the file in the data dir that keeps a generated token. */
export const TOKEN_FILE = 'token';

const OWNER_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
const TOKEN_PATTERN = /^[\x21-\x7e]{1,512}$/;

/** A token that is malformed, or a `BATON_TOKENS` list that cannot be read. */
export class TokenConfigError extends Error {
  override readonly name = 'TokenConfigError';
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The token table. Lookups compare SHA-256 digests with `timingSafeEqual`
 * against every entry, without stopping at a match, so that neither the
 * token's content nor its position in the table shows in the timing.
 */
export class TokenAuth {
  private readonly entries: { owner: string; digest: Buffer }[];

  constructor(entries: readonly TokenEntry[]) {
    if (entries.length === 0) throw new TokenConfigError('at least one token is needed');
    const seen = new Set<string>();
    this.entries = entries.map(({ owner, token }) => {
      if (!OWNER_PATTERN.test(owner)) {
        throw new TokenConfigError(`owner "${owner}" must be 1 to 64 letters, digits or . _ @ -`);
      }
      if (!TOKEN_PATTERN.test(token)) {
        throw new TokenConfigError(
          `the token of owner "${owner}" must be 1 to 512 visible ASCII characters without spaces`,
        );
      }
      if (seen.has(token)) throw new TokenConfigError(`a token is given twice (owner "${owner}")`);
      seen.add(token);
      return { owner, digest: digest(token) };
    });
  }

  /** The owner of `token`, or null when it is missing or unknown. */
  ownerOf(token: string | null | undefined): string | null {
    if (typeof token !== 'string' || token.length === 0) return null;
    const candidate = digest(token);
    let owner: string | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, candidate) && owner === null) owner = entry.owner;
    }
    return owner;
  }

  /** The owner of an `Authorization: Bearer <token>` header, or null. */
  ownerOfHeader(header: string | string[] | undefined): string | null {
    return this.ownerOf(bearerToken(header));
  }

  /** Every owner that has a token, once each. */
  owners(): string[] {
    return [...new Set(this.entries.map((e) => e.owner))];
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
/**
 * Who may read `GET /metrics`: server-wide numbers are not any one owner's.
 * The metrics token when one is set; otherwise the owner's token of a
 * single-owner server (that owner is the operator); otherwise nobody.
 */
export function metricsAccess(
  auth: TokenAuth,
  metricsToken: string | null,
): (header: string | string[] | undefined) => boolean {
  if (metricsToken !== null) {
    const wanted = digest(metricsToken);
    return (header) => {
      const token = bearerToken(header);
      return token !== null && timingSafeEqual(digest(token), wanted);
    };
  }
  const single = auth.owners().length === 1;
  return (header) => single && auth.ownerOfHeader(header) !== null;
}

export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Reads `BATON_TOKENS`: `"alice:tokA,bob:tokB"` (spaces around entries are ignored). */
export function parseTokenList(text: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const colon = item.indexOf(':');
    if (colon <= 0 || colon === item.length - 1) {
      throw new TokenConfigError(
        `BATON_TOKENS entry "${item.slice(0, 40)}" is not owner:token (e.g. alice:tokA,bob:tokB)`,
      );
    }
    entries.push({ owner: item.slice(0, colon), token: item.slice(colon + 1) });
  }
  if (entries.length === 0)
    throw new TokenConfigError('BATON_TOKENS is set but lists no owner:token');
  return entries;
}

/** Options of {@link loadAuth}. */
export interface LoadAuthOptions {
  /** `BATON_TOKENS`. */
  tokens?: string | undefined;
  /** `--token` / `BATON_TOKEN`: a token of owner {@link DEFAULT_OWNER}. */
  token?: string | undefined;
  /** Where a generated token is kept (`<dataDir>/token`). */
  dataDir: string;
}

/** The result of {@link loadAuth}. */
export interface LoadedAuth {
  auth: TokenAuth;
  source: TokenSource;
  /** The token of owner {@link DEFAULT_OWNER} when there is one (printed at start), else null. */
  defaultToken: string | null;
  /** Every token, so that the server can check nothing hands one to a job. */
  secrets: string[];
}

/**
 * Builds the token table: `BATON_TOKENS` and `--token` together when either
 * is set; else the token kept in `<dataDir>/token`, made (32 random bytes,
 * mode 0600) on the first start and reused after.
 */
export async function loadAuth(options: LoadAuthOptions): Promise<LoadedAuth> {
  const listed = options.tokens?.trim() ? parseTokenList(options.tokens) : [];
  const flag = options.token?.trim();
  if (listed.length > 0 || flag) {
    const entries = [...(flag ? [{ owner: DEFAULT_OWNER, token: flag }] : []), ...listed];
    return {
      auth: new TokenAuth(entries),
      source: flag ? 'flag' : 'env',
      defaultToken: entries.find((e) => e.owner === DEFAULT_OWNER)?.token ?? null,
      secrets: entries.map((e) => e.token),
    };
  }
  const { token, created } = await tokenFile(options.dataDir);
  return {
    auth: new TokenAuth([{ owner: DEFAULT_OWNER, token }]),
    source: created ? 'generated' : 'file',
    defaultToken: token,
    secrets: [token],
  };
}

async function tokenFile(dataDir: string): Promise<{ token: string; created: boolean }> {
  const path = join(dataDir, TOKEN_FILE);
  await mkdir(dataDir, { recursive: true });
  const existing = await readFile(path, 'utf8').catch((error: unknown) => {
    if (isCode(error, 'ENOENT')) return null;
    throw error;
  });
  if (existing !== null && existing.trim() !== '') {
    // Tighten a file that was copied around with looser permissions.
    await chmod(path, 0o600);
    return { token: existing.trim(), created: false };
  }
  const token = randomBytes(32).toString('base64url');
  try {
    // `wx` unless we replace an empty file: two processes starting together keep one token.
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: existing === null ? 'wx' : 'w' });
  } catch (error) {
    if (isCode(error, 'EEXIST')) return tokenFile(dataDir);
    throw error;
  }
  return { token, created: true };
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as Error & { code?: unknown }).code === code;
}

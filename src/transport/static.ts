/**
 * Serves the dashboard's files from one directory: GET and HEAD only, no
 * listing, nothing outside the directory (`..`, encoded separators and
 * symlinks that lead out are refused).
 */

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyReply } from 'fastify';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
};

/** The content type served for a file name; unknown kinds are plain bytes. */
export function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** A file found under the static root, ready to stream. */
export interface StaticFile {
  path: string;
  size: number;
  contentType: string;
}

/**
 * Finds the file a URL path names under `root` (`/` and directories give
 * their `index.html`), or null when there is none or the path leaves `root`.
 */
export async function findStaticFile(root: string, urlPath: string): Promise<StaticFile | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\u0000') || decoded.includes('\\')) return null;
  const base = resolve(root);
  let path = resolve(join(base, decoded));
  if (path !== base && !path.startsWith(base + sep)) return null;
  let info = await stat(path).catch(() => null);
  if (info?.isDirectory()) {
    path = join(path, 'index.html');
    info = await stat(path).catch(() => null);
  }
  if (!info?.isFile()) return null;
  // A symlink inside the root may point anywhere; follow it and check again.
  const [realBase, realPath] = await Promise.all([realpath(base), realpath(path)]);
  if (!realPath.startsWith(realBase + sep)) return null;
  return { path: realPath, size: info.size, contentType: contentTypeOf(realPath) };
}

/** Sends a found file (headers only for HEAD). */
export function sendStaticFile(reply: FastifyReply, file: StaticFile, head: boolean) {
  reply
    .code(200)
    .header('content-type', file.contentType)
    .header('content-length', file.size)
    .header('x-content-type-options', 'nosniff')
    // The dashboard changes with the service; let browsers revalidate instead of guessing.
    .header('cache-control', 'no-cache');
  return head ? reply.send() : reply.send(createReadStream(file.path));
}

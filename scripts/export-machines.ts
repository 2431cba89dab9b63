/**
 * Writes each machine's definition as JSON for Stately Studio:
 * `node --import tsx scripts/export-machines.ts [outDir]` (default `docs/machines/`).
 * The same JSON is served at `GET /v1/machines`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { machineDefinitions } from '../src/machines/definitions.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'machines'));

await mkdir(outDir, { recursive: true });
for (const [id, definition] of Object.entries(machineDefinitions())) {
  const file = path.join(outDir, `${id}.json`);
  // Written as the repository's formatter would, so that `npm run lint` stays clean after an export.
  const options = { ...(await resolveConfig(file)), parser: 'json' };
  await writeFile(file, await format(JSON.stringify(definition), options));
  console.log(`wrote ${path.relative(process.cwd(), file) || file}`);
}

/**
 * Writes each machine's definition as JSON for Stately Studio:
 * `node --import tsx scripts/export-machines.ts [outDir]` (default `docs/machines/`).
 * The same JSON is served at `GET /v1/machines`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineDefinitions } from '../src/machines/definitions.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'machines'));

await mkdir(outDir, { recursive: true });
for (const [id, definition] of Object.entries(machineDefinitions())) {
  const file = path.join(outDir, `${id}.json`);
  await writeFile(file, `${JSON.stringify(definition, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file) || file}`);
}

#!/usr/bin/env node
// The `baton` command: runs the compiled CLI. `npm install` builds dist/
// (the `prepare` script runs `tsc -p tsconfig.build.json`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('baton: dist/cli.js is missing: run npm install (it builds dist/)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv.slice(2));

#!/usr/bin/env node
// Writes docs/seawall.1 from the command definitions (cli/program.ts, compiled: npm run build
// first). test/cli/program.test.ts ("the man page is generated …") fails when the committed page differs.
import { writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const { buildProgram } = await import(new URL('dist/cli/program.js', root).href);
const { manPage } = await import(new URL('dist/cli/man-page.js', root).href);
const { VERSION } = await import(new URL('dist/daemon/version.js', root).href);

const quiet = { out: () => {}, err: () => {} };
const program = buildProgram({ io: quiet, env: {}, now: Date.now, exit: () => {} });
const out = new URL('docs/seawall.1', root);
writeFileSync(out, manPage(program, VERSION));
console.log(`wrote ${out.pathname}`);

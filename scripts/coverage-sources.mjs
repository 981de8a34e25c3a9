// Makes the source maps Node recorded in the coverage data readable to c8 before it reports.
//
// With NODE_V8_COVERAGE set, Node writes the source map of every file it loaded into that
// process's coverage file ("source-map-cache"), each source named by its file URL. c8 (through
// v8-to-istanbul 9) takes a map of one source by its resolved path, but a map of several sources —
// dist/bin/*.js, one file joined from many (scripts/bundle.mjs) — by those names as they are, and
// matches them against .c8rc.json's include and exclude as paths: no file: URL matches, so every
// range of the bundle would be dropped and every line it maps to counted as covered. Naming the
// sources by path instead gives the bundle the same treatment as tsc's one-file maps.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The process coverage object with the file: URL sources of its many-source maps named by path
 * (one-source maps are resolved by c8 already and left as they are); true if anything changed.
 */
export function sourcesAsPaths(processCoverage) {
  let changed = false;
  for (const entry of Object.values(processCoverage['source-map-cache'] ?? {})) {
    const sources = entry?.data?.sources;
    if (!Array.isArray(sources) || sources.length < 2) continue;
    entry.data.sources = sources.map((source) => {
      if (typeof source !== 'string' || !source.startsWith('file:')) return source;
      changed = true;
      return fileURLToPath(source);
    });
  }
  return changed;
}

/** Rewrites every coverage file in `dir` that names a source by URL; returns how many. */
export function rewriteCoverageDir(dir) {
  let rewritten = 0;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;
    const path = join(dir, name);
    const text = readFileSync(path, 'utf8');
    if (!text.includes('"file:')) continue;
    const data = JSON.parse(text);
    if (!sourcesAsPaths(data)) continue;
    writeFileSync(path, JSON.stringify(data));
    rewritten++;
  }
  return rewritten;
}

// `node scripts/coverage-sources.mjs DIR` rewrites DIR by hand (test/scripts/coverage-sources.test.ts).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/coverage-sources.mjs <coverage temp directory>');
    process.exit(2);
  }
  console.log(`rewrote ${rewriteCoverageDir(dir)} coverage files`);
}

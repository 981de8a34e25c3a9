/**
 * The files `npm run build` ships in dist/bin/ (scripts/bundle.mjs) are ASCII: V8 keeps each
 * thread's source text for as long as the thread runs, two bytes a character when any character is
 * outside Latin-1 (the daemon's 1.45 MB as 2.9 MB). Runs on the build `npm test` makes first.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const BIN = new URL('../../dist/bin/', import.meta.url);

test('every file the build ships in dist/bin/ is ASCII', () => {
  const files = readdirSync(BIN).filter((f) => f.endsWith('.js'));
  assert.ok(files.includes('seawall.js'), `built: ${files.join(', ')} (run npm run build first)`);
  for (const file of files) {
    const bytes = readFileSync(new URL(file, BIN));
    const at = bytes.findIndex((b) => b > 0x7f);
    assert.equal(
      at,
      -1,
      `${file}: byte ${at} is not ASCII: …${bytes.subarray(Math.max(0, at - 40), at + 8)}`,
    );
  }
});

/**
 * scripts/mutation-check.mjs breaks the source at fixed texts; when a change moves one of them,
 * the script can no longer apply that mutation. `--check` says so, and this test keeps it true.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;

test('every mutation of scripts/mutation-check.mjs still finds the text it breaks', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mutation-check.mjs'), '--check'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^every mutation \(\d+\) finds its text$/m);
});

/**
 * `npm start` (scripts/start.mjs) from a clone whose path has a space in it: the checkout's
 * directory must be found as it is, not URL-escaped, a build that cannot even start must say why,
 * and the daemon logs to the console unless the caller chose a `--log` target. Runs a copy of start.mjs in a scratch "clone" with a stub dist/bin/seawall.js (building
 * there would take a minute).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));

function clone(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'seawall start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'a clone');
  mkdirSync(join(root, 'scripts'), { recursive: true });
  copyFileSync(START, join(root, 'scripts/start.mjs'));
  return root;
}

test('npm start from a path with a space finds its dist/ and runs it', (t) => {
  const root = clone(t);
  mkdirSync(join(root, 'dist/bin'), { recursive: true });
  writeFileSync(join(root, 'dist/bin/seawall.js'), "console.log('stub', ...process.argv.slice(2));\n");
  const r = spawnSync(process.execPath, [join(root, 'scripts/start.mjs'), '--x'], {
    cwd: root,
    env: { PATH: process.env.PATH },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^seawall start: dist\/ is up to date$/m);
  // It logs to this console: the daemon's --log auto would pick a running journald.
  assert.match(r.stdout, /^stub daemon --log stderr --x$/m);
});

test("npm start -- --log … is the caller's choice, passed on as it is", (t) => {
  const root = clone(t);
  mkdirSync(join(root, 'dist/bin'), { recursive: true });
  writeFileSync(join(root, 'dist/bin/seawall.js'), "console.log('stub', ...process.argv.slice(2));\n");
  for (const args of [['--log', 'auto'], ['--log=journal']]) {
    const r = spawnSync(process.execPath, [join(root, 'scripts/start.mjs'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^stub daemon ${args.join(' ')}$`, 'm'));
    assert.doesNotMatch(r.stdout, /summarised on this console/);
  }
});

test('a build that cannot start says why', (t) => {
  const root = clone(t);
  const r = spawnSync(process.execPath, [join(root, 'scripts/start.mjs')], {
    cwd: root,
    env: { PATH: join(root, 'no-such-bin') },
    encoding: 'utf8',
  });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^seawall start: the build failed: .*ENOENT/m);
});

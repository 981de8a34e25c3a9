/**
 * scripts/install.sh writes what root runs and reads: nothing it writes may be writable by
 * another user whatever the caller's umask, and an install that cannot complete (no npm, npm ls
 * failing) must stop before it touches the installed copy. Runs the script from this checkout
 * (npm run build first) into a scratch DESTDIR; no root needed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const SCRIPT = join(REPO, 'scripts/install.sh');

/** Runs the install script into `root` under `umask`, with `path` as PATH. */
function install(root: string, opts: { umask?: string; path?: string } = {}) {
  return spawnSync('/bin/sh', ['-c', `umask ${opts.umask ?? '022'} && exec /bin/sh "$0"`, SCRIPT], {
    cwd: REPO,
    env: { ...process.env, DESTDIR: root, PATH: opts.path ?? process.env.PATH },
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
}

/** Every file and directory under `dir` (links left out: their mode means nothing). */
function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) continue;
    yield path;
    if (st.isDirectory()) yield* walk(path);
  }
}

/** A directory of links to every program on PATH but `left` out: PATH without those. */
function pathWithout(dir: string, left: string[]): string {
  mkdirSync(dir);
  const linked = new Set(left);
  for (const from of (process.env.PATH ?? '').split(delimiter)) {
    if (!from || !existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      if (linked.has(name)) continue;
      linked.add(name);
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-install-safety-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('under umask 000 the install writes nothing group- or world-writable', (t) => {
  const root = join(scratch(t), 'root');
  mkdirSync(root, { mode: 0o755 });
  const r = install(root, { umask: '000' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const writable = [...walk(root)]
    .filter((p) => (lstatSync(p).mode & 0o022) !== 0)
    .map((p) => `${p.slice(root.length)} ${(lstatSync(p).mode & 0o777).toString(8)}`);
  assert.deepEqual(writable.slice(0, 20), [], `${writable.length} writable by others`);
  assert.ok(existsSync(join(root, 'usr/share/bash-completion/completions/seawall')));
});

test('an install that cannot list the packages fails at once and leaves the previous one working', (t) => {
  const dir = scratch(t);
  const root = join(dir, 'root');
  mkdirSync(root);
  const first = install(root);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  const cli = join(root, 'usr/lib/seawall/dist/bin/seawall.js');
  const works = (why: string) => {
    const v = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    assert.equal(v.status, 0, `${why}: the previous install still runs\n${v.stderr}`);
    assert.match(v.stdout, /\d+\.\d+\.\d+/);
  };
  works('installed');

  // No npm on PATH.
  const noNpm = install(root, { path: pathWithout(join(dir, 'bin'), ['npm', 'npx']) });
  assert.notEqual(noNpm.status, 0, noNpm.stdout);
  assert.match(noNpm.stderr, /^install: npm is not on PATH/m);
  assert.doesNotMatch(noNpm.stdout, /copying/, 'it stops before copying anything');
  works('no npm');

  // An npm whose `npm ls` fails (a package missing or invalid).
  const fake = join(dir, 'fake-npm');
  mkdirSync(fake);
  writeFileSync(join(fake, 'npm'), '#!/bin/sh\necho "npm error missing: koffi@^2" >&2\nexit 1\n');
  chmodSync(join(fake, 'npm'), 0o755);
  const lsFails = install(root, { path: `${fake}${delimiter}${process.env.PATH}` });
  assert.notEqual(lsFails.status, 0, lsFails.stdout);
  assert.match(lsFails.stderr, /npm error missing: koffi@\^2/, 'npm says why');
  assert.match(lsFails.stderr, /^install: npm ls failed/m);
  assert.doesNotMatch(lsFails.stdout, /copying/, 'it stops before copying anything');
  works('npm ls failing');
  assert.ok(!existsSync(join(root, 'usr/lib/seawall.new')), 'nothing left beside the install');
});

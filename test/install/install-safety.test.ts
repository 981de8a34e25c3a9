/**
 * scripts/install.sh writes what root runs and reads: nothing it writes may be writable by
 * another user whatever the caller's umask. Runs the script from this checkout (npm run build
 * first) into a scratch DESTDIR; no root needed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

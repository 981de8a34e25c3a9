/**
 * ensureSafeDir against another local user's symlink planted on a missing component while the
 * daemon creates the path: it used to be followed.
 */
import assert from 'node:assert/strict';
import fs, { chmodSync, existsSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { ensureSafeDir } from '../../daemon/paths.js';

const NOBODY = 65534;
const bases: string[] = [];
after(() => {
  for (const b of bases) rmSync(b, { recursive: true, force: true });
});

/** A 0755 directory of root's with a sticky, world-writable `stk` in it, as /tmp is. */
function base(): { base: string; sticky: string } {
  const b = mkdtempSync(join(tmpdir(), 'seawall-paths-'));
  bases.push(b);
  chmodSync(b, 0o755);
  const sticky = join(b, 'stk');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  return { base: b, sticky };
}

/** A symlink at `at` to `to`, owned by nobody: its owner may point it anywhere later. */
function nobodysLink(to: string, at: string): string {
  symlinkSync(to, at);
  lchownSync(at, NOBODY, NOBODY);
  return at;
}

test('a symlink planted on a missing component while the path is created is refused', (t: TestContext) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give a symlink to another user');
  const { base: b, sticky } = base();
  const victim = join(b, 'victim'); // stands for /etc
  mkdirSync(victim, { mode: 0o755 });
  // The other user wins the race: `stk/a` appears between the walk and its mkdir (EEXIST).
  const mkdir = fs.mkdirSync;
  t.mock.method(fs, 'mkdirSync', (p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
    if (String(p) === join(sticky, 'a') && !existsSync(p)) nobodysLink(victim, join(sticky, 'a'));
    return mkdir(p, o);
  });
  syncBuiltinESMExports();
  t.after(() => {
    t.mock.restoreAll();
    syncBuiltinESMExports();
  });
  assert.throws(
    () => ensureSafeDir(join(sticky, 'a', 'b'), 0o700),
    /refusing to use .*stk\/a: it is a symbolic link made while the path was created/,
  );
  // Nothing was created where the link leads.
  assert.deepEqual(fs.readdirSync(victim), []);
});

/**
 * ensureSafeDir and checkTrustedFile against another local user's symlinks: one planted on a
 * missing component while the daemon creates the path, and one met only inside the target of a
 * symlink of root's own. Both used to be followed.
 */
import assert from 'node:assert/strict';
import fs, { chmodSync, existsSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { checkTrustedFile, ensureSafeDir } from '../../daemon/paths.js';

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

test("another user's symlink met inside the target of root's own symlink is refused", (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give a symlink to another user');
  const { base: b, sticky } = base();
  const good = join(b, 'rootdir');
  mkdirSync(join(good, 'state'), { recursive: true, mode: 0o700 });
  chmodSync(good, 0o755);
  fs.writeFileSync(join(good, 'policy.yaml'), 'rules: []\n', { mode: 0o644 });
  nobodysLink(good, join(sticky, 'x'));
  const etc = join(b, 'etc');
  mkdirSync(etc, { mode: 0o755 });
  // Root's links, given as the paths: only their targets pass through nobody's `stk/x`.
  symlinkSync(join(sticky, 'x', 'policy.yaml'), join(etc, 'policy.yaml'));
  symlinkSync(join(sticky, 'x', 'state'), join(etc, 'state'));
  symlinkSync(join(sticky, 'x'), join(b, 'lib'));
  // A relative target, resolved from the link's directory.
  symlinkSync('../stk/x/state', join(etc, 'rel-state'));
  const refused =
    /refusing to use .*stk\/x: it is a symlink owned by uid 65534, who could point it elsewhere/;
  assert.throws(() => checkTrustedFile(join(etc, 'policy.yaml'), 'policy'), refused);
  assert.throws(() => ensureSafeDir(join(etc, 'state'), 0o700), refused);
  assert.throws(() => ensureSafeDir(join(b, 'lib', 'state'), 0o700), refused);
  assert.throws(() => ensureSafeDir(join(etc, 'rel-state'), 0o700), refused);
  // Root's links through root's directories alone are still followed.
  symlinkSync(good, join(b, 'lib2'));
  symlinkSync('../lib2/policy.yaml', join(etc, 'policy2.yaml'));
  assert.doesNotThrow(() => checkTrustedFile(join(etc, 'policy2.yaml'), 'policy'));
  assert.doesNotThrow(() => ensureSafeDir(join(b, 'lib2', 'state'), 0o700));
});

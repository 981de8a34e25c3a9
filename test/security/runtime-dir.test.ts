/**
 * Issue 12, items 2 and 14: the daemon's directories are its own. With default paths a root
 * daemon refuses a `seawall-<uid>` runtime directory that another user created (mode 0777) or made
 * a symlink, and a state directory it does not own; a fresh one is created 0755 and the event
 * store's files are private (0600).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLI, removeDir, startDaemon } from '../helpers/daemon.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});

/** A sticky, world-writable directory standing in for /tmp (TMPDIR points the default there). */
function fakeTmp(): string {
  const dir = mkdtempSync('/tmp/seawall-tmp-');
  chmodSync(dir, 0o1777);
  dirs.push(dir);
  return dir;
}

/** Runs `seawall daemon` with default socket paths under `tmp`; resolves with its exit code and stderr. */
function runDefault(
  tmp: string,
  stateDir: string,
  extra: string[] = [],
): Promise<{ code: number | null; err: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, NOTIFY_SOCKET: '' };
  delete env.XDG_RUNTIME_DIR;
  delete env.RUNTIME_DIRECTORY;
  const p = spawn(
    process.execPath,
    [CLI, 'daemon', '--state-dir', stateDir, '--no-metrics', '--log', 'stderr', ...extra],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  let out = '';
  p.stderr.on('data', (c) => {
    err += c;
  });
  p.stdout.on('data', (c) => {
    out += c;
    // Started after all (the test then fails on the exit code): stop it.
    if (out.includes('seawall daemon ready')) p.kill('SIGTERM');
  });
  const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, err });
    }),
  );
}

test('a runtime directory another user created (0777) is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to create another user’s directory');
  const tmp = fakeTmp();
  const squat = join(tmp, 'seawall-0');
  mkdirSync(squat);
  chownSync(squat, 65534, 65534);
  chmodSync(squat, 0o777);
  const r = await runDefault(tmp, join(tmp, 'state'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /refusing to use .*seawall-0: it is owned by uid 65534/);
});

test('a runtime directory that is a symlink is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root');
  const tmp = fakeTmp();
  const elsewhere = join(tmp, 'attacker');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(tmp, 'seawall-0'));
  const r = await runDefault(tmp, join(tmp, 'state'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /refusing to use .*seawall-0: it is a symbolic link/);
});

test('a state directory owned by another user is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root');
  const tmp = fakeTmp();
  const state = join(tmp, 'state');
  mkdirSync(state, { mode: 0o700 });
  chownSync(state, 65534, 65534);
  const r = await runDefault(tmp, state);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /refusing to use .*state: it is owned by uid 65534/);
});

test('a symlink another user owns on a path is refused, though it leads somewhere safe', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give a symlink to another user');
  const tmp = fakeTmp();
  // Root's own directory and policy, reached through symlinks of uid 65534 in the sticky tmp: its
  // owner could point them elsewhere once checked.
  const safe = mkdtempSync('/tmp/seawall-safe-');
  dirs.push(safe);
  mkdirSync(join(safe, 'state'), { mode: 0o700 });
  writeFileSync(join(safe, 'policy.yaml'), 'version: 1\nrules: []\ndefault: { action: { type: none } }\n');
  const link = (name: string, to: string) => {
    symlinkSync(to, join(tmp, name));
    lchownSync(join(tmp, name), 65534, 65534);
    return join(tmp, name);
  };
  const state = link('state-link', join(safe, 'state'));
  const r = await runDefault(tmp, state);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /refusing to use .*state-link: it is a symlink owned by uid 65534/);
  const policy = link('policy-link', join(safe, 'policy.yaml'));
  const p = await runDefault(tmp, join(safe, 'state'), ['--policy', policy]);
  assert.notEqual(p.code, 0);
  assert.match(p.err, /refusing to use .*policy-link: it is a symlink owned by uid 65534/);
});

test('a fresh runtime directory is made 0755 and ours; the store files are 0600', async () => {
  const tmp = fakeTmp();
  const r = await runDefault(tmp, join(tmp, 'state'));
  assert.equal(r.code, 0, r.err);
  const st = lstatSync(join(tmp, `seawall-${process.getuid?.()}`));
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o7777, 0o755);
  assert.equal(st.uid, process.getuid?.());

  const d = await startDaemon({ metrics: false });
  dirs.push(d.dir);
  try {
    for (const f of ['events.sqlite', 'events.sqlite-wal']) {
      const mode = statSync(join(d.stateDir, f)).mode & 0o777;
      assert.equal(mode & 0o077, 0, `${f} is ${mode.toString(8)}`);
    }
  } finally {
    await d.stop();
  }
});

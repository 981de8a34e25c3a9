/**
 * The README's first command ends in `npm start`: it must say what it is doing before it goes
 * quiet (the build took minutes with no word), and a console must not get a ~400-character line
 * per event — memory errors are summarised there, with the counts and the VMs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { simulate } from '../../vmm/simulator.js';

const ROOT = new URL('../../', import.meta.url).pathname;

test('npm start says what it does, then summarises memory errors on the console', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.equal(pkg.scripts.start, 'node scripts/start.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'seawall-start-'));
  const p = spawn(process.execPath, [join(ROOT, 'scripts/start.mjs'), '--metrics', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, XDG_RUNTIME_DIR: dir, XDG_STATE_HOME: dir, NOTIFY_SOCKET: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(async () => {
    if (p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of waiters.filter((x) => x.re.test(l))) w.resolve();
  };
  createInterface({ input: p.stdout }).on('line', onLine);
  createInterface({ input: p.stderr }).on('line', onLine);
  const seen = (re: RegExp, fresh = false) =>
    new Promise<void>((resolve, reject) => {
      if (!fresh && lines.some((l) => re.test(l))) return resolve();
      waiters.push({ re, resolve });
      p.once('exit', (c) => reject(new Error(`exited ${c} before ${re}:\n${lines.join('\n')}`)));
    });
  await seen(/^seawall daemon ready/);
  assert.match(lines[0] ?? '', /^seawall start: (compiling the TypeScript sources|dist\/ is up to date)/);
  assert.ok(lines.some((l) => /^seawall start: starting the daemon with its built-in defaults/.test(l)));
  const summary = await simulate({
    socket: join(dir, 'seawall', 'plugin.sock'),
    vms: 2,
    vcpus: 1,
    events: 50,
    vmPrefix: 'qs',
  });
  assert.equal(summary.answered, 50);
  // The summary is written every 10 s; it is awaited, not timed.
  await seen(
    /^50 memory errors in the last 10 s \(inject 50\) on VMs qs-[01], qs-[01] — seawall events for each/,
  );
  assert.equal(lines.filter((l) => l.startsWith('memory error (')).length, 0, 'no per-event lines');
});

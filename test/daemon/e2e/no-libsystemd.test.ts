/**
 * Under a service manager (NOTIFY_SOCKET set) on a host without libsystemd — a container runtime's
 * --sdnotify, say — the daemon logs that it cannot notify and runs (docs/systemd.md). It used to
 * fail in its constructor: the notifier reported the missing library to a log not yet made.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CLI, removeDir } from '../../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../../helpers/processes.js';
import { requireTool } from '../../helpers/tools.js';
import { within } from '../../helpers/wait.js';

test('NOTIFY_SOCKET set and no libsystemd: the daemon warns and runs, and stops on SIGTERM', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root for a mount namespace');
  const unshare = requireTool(t, 'unshare', 'util-linux');
  if (!unshare) return;
  const lib = /=> (\S+)/.exec(
    execFileSync('ldconfig', ['-p'], { encoding: 'utf8' })
      .split('\n')
      .find((l) => l.includes('libsystemd.so.0 ')) ?? '',
  )?.[1];
  assert.ok(lib, 'libsystemd.so.0 is installed (the test hides it)');
  const dir = mkdtempSync(join(tmpdir(), 'seawall-nolib-'));
  t.after(() => removeDir(dir));
  const daemon = [
    process.execPath,
    CLI,
    'daemon',
    '--socket',
    join(dir, 'p.sock'),
    '--control-socket',
    join(dir, 'c.sock'),
    '--state-dir',
    join(dir, 'state'),
    '--log',
    'stderr',
    '--no-metrics',
  ].map((a) => `'${a}'`);
  const script = `mount --bind /dev/null '${lib}' && exec ${daemon.join(' ')}`;
  const proc = spawnOwned(unshare, ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NOTIFY_SOCKET: join(dir, 'notify.sock') },
  });
  t.after(() => killOwned(proc));
  const stderr: string[] = [];
  createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on('line', (l) => stderr.push(l));
  await within(
    'the daemon to be ready',
    new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        if (l.startsWith('seawall daemon ready')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr.join('\n')}`)));
    }),
  );
  assert.ok(
    stderr.some((l) => l.includes('sd_notify:')),
    `a warning that it cannot notify:\n${stderr.join('\n')}`,
  );
  proc.kill('SIGTERM');
  const exit = await within('the daemon to stop', exitOf(proc));
  assert.equal(exit.code, 0);
});

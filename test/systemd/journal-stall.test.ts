/**
 * A journald that stops taking entries (stopped, or stuck on its disk) must not stop the daemon:
 * sd_journal_sendv blocks once journald's receive queue is full, and on the event loop that held
 * every verdict. In a private mount namespace, /run/systemd/journal/socket is a datagram socket
 * that nobody reads; a child logs 2,000 entries to it and reports.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CLI } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { within } from '../helpers/wait.js';

const CHILD = new URL('./children/stalled-journal-child.ts', import.meta.url).pathname;

/**
 * A shell script for a new mount namespace: /run/systemd/journal/socket becomes a datagram socket
 * bound and never read (datagrams queue up to the kernel's bound, then senders block), then
 * `setup` runs and `command` is exec'd.
 */
function stalledJournal(python: string, command: string, setup: string[] = []): string {
  const listener =
    'import socket,time; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); ' +
    "s.bind('/run/systemd/journal/socket'); time.sleep(120)";
  return [
    'set -e',
    'mkdir -p /run/systemd/journal',
    'mount -t tmpfs -o mode=0755 tmpfs /run/systemd/journal',
    ...setup,
    `${python} -c "${listener}" &`,
    // Until the socket is there, at most 10 s.
    'n=0; while [ ! -S /run/systemd/journal/socket ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done',
    `exec ${command}`,
  ].join('\n');
}

test('entries to a journald that takes none: logging never blocks, the loop turns, the rest waits', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root for a mount namespace');
  const unshare = requireTool(t, 'unshare', 'util-linux');
  const python = requireTool(t, 'python3', 'python3');
  if (!unshare || !python) return;
  const script = stalledJournal(python, `"${process.execPath}" --import tsx "${CHILD}"`);
  // In a process group of its own, killed whole (the child, stuck at exit, and the listener).
  const child = spawnOwned(unshare, ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(child));
  const line = await within(
    'the report of the child that logged to a journald taking nothing',
    new Promise<string>((resolve) =>
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve),
    ),
  );
  const out = JSON.parse(line);
  assert.equal(out.target, 'journal');
  assert.ok(out.turns > 0, 'the event loop turned while journald took nothing');
  assert.equal(out.drained, false, 'the entries are still waiting, not lost silently');
  assert.ok(out.loggedMs < 5_000, `2,000 entries logged in ${out.loggedMs} ms`);
});

test('a daemon stopped while journald takes nothing exits 0, not by a signal systemd records as a failure', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root for mount and network namespaces');
  const unshare = requireTool(t, 'unshare', 'util-linux');
  const python = requireTool(t, 'python3', 'python3');
  if (!unshare || !python) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-stall-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = stalledJournal(
    python,
    `"${process.execPath}" "${CLI}" daemon --socket ${dir}/p.sock --control-socket ${dir}/c.sock ` +
      `--state-dir ${dir}/state --no-metrics --log journal`,
    // In this network namespace alone, the first entry already finds the queue full.
    ['echo 0 > /proc/sys/net/unix/max_dgram_qlen'],
  );
  // The daemon is this process (unshare and sh exec it), in a process group of its own with the listener.
  const daemon = spawnOwned(unshare, ['-m', '-n', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(daemon));
  const exited = exitOf(daemon);
  await within(
    'the daemon to be ready',
    new Promise<void>((resolve) =>
      createInterface({ input: daemon.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        if (l.startsWith('seawall daemon ready')) resolve();
      }),
    ),
  );
  daemon.kill('SIGTERM');
  assert.deepEqual(await within('the daemon to exit', exited), { code: 0, signal: null });
});

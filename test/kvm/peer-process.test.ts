/**
 * The peer process of a plugin connection on a kernel without SO_PEERPIDFD (before 6.5): the
 * pidfd of SO_PEERCRED's PID is kept only if that process runs with the peer's uid. SO_PEERCRED's
 * uid is the effective uid at connect(2), so a VMM whose real and effective uids differ (setuid,
 * or one that changed them) is still its own peer; a process of another user is not.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { peerCred, peerProcess, verifiedPeer } from '../../kvm/index.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

const NOBODY = 65534;
const children: ChildProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const child of children) await killOwned(child, 'the peer');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test('a peer whose effective uid differs from its real uid is verified by the uid it connected with', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to give a process two uids');
  const dir = mkdtempSync(join(tmpdir(), 'seawall-peer-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const path = join(dir, 'plugin.sock');
  const server = createServer();
  t.after(() => server.close());
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  chmodSync(path, 0o777);

  // Real uid 0, effective uid nobody: what a setuid VMM run by root looks like.
  const script = `process.seteuid(${NOBODY}); require('node:net').connect(process.argv[1]).on('connect', () => process.stdout.write('up\\n')); setInterval(() => {}, 1e6);`;
  const child = spawnOwned(process.execPath, ['-e', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const socket = await within('the peer to connect', accepted);
  t.after(() => socket.destroy());
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;

  const cred = peerCred(fd);
  assert.deepEqual([cred.pid, cred.uid], [child.pid, NOBODY], 'SO_PEERCRED names the effective uid');
  const exact = peerProcess(fd);
  t.after(() => exact.pidfd?.close());
  assert.equal(exact.how, 'so_peerpidfd', 'this kernel has SO_PEERPIDFD');

  const fallback = verifiedPeer(cred);
  t.after(() => fallback.pidfd?.close());
  assert.equal(fallback.how, 'pidfd_open_verified');
  assert.equal(fallback.pidfd?.signal(0), 'sent');

  const stranger = verifiedPeer({ ...cred, uid: 4242 });
  assert.deepEqual([stranger.how, stranger.pidfd], ['unverified', null], 'a uid the process does not run as');
});

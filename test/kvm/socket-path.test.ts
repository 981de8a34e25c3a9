/**
 * kvm/socket-path.ts: the file a listening or connected Unix socket is bound to, from the kernel
 * (getsockname(2)) — how the daemon learns which file a socket systemd passed in is.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { boundSocketPath } from '../../kvm/index.js';

const fdOf = (handle: Server | Socket): number =>
  (handle as unknown as { _handle: { fd: number } })._handle.fd;

test('boundSocketPath names a listening socket’s file, and null for a connected socket that has none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sockname-'));
  const path = join(dir, 'named ünïcode.sock');
  const server = createServer();
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  assert.equal(boundSocketPath(fdOf(server)), path);
  const client = connect(path);
  t.after(() => client.destroy());
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  // A client's end is unnamed (autobind is for abstract addresses, and Node does not ask for it).
  assert.equal(boundSocketPath(fdOf(client)), null);
  assert.throws(() => boundSocketPath(0x7fff_fff0), /getsockname/);
});

/**
 * A socket passed by the service manager overrides the path configured for it: each such path is
 * told at start, naming both and the one served; a path that is the passed one, or none given, is
 * not. Real listening Unix sockets in a temporary directory, their paths read back from the fds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { type TestContext, test } from 'node:test';
import { overriddenSockets } from '../../daemon/listen-wiring.js';

/** A listening Unix socket at `path` and its fd. */
async function listening(t: TestContext, path: string): Promise<number> {
  const server: Server = createServer();
  t.after(() => new Promise<void>((done) => server.close(() => done())));
  await new Promise<void>((done) => server.listen(path, done));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  assert.ok(fd > 2, `fd ${fd}`);
  return fd;
}

test('a configured path a passed socket overrides is told, naming both and the one served', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-lw-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const plugin = await listening(t, join(dir, 'activated.sock'));
  const control = await listening(t, join(dir, 'control.sock'));
  const attach = await listening(t, join(dir, 'attach.sock'));
  const passed = new Map([
    ['plugin', plugin],
    ['control', control],
    ['attach', attach],
  ]);
  const lines = overriddenSockets(passed, {
    plugin: join(dir, 'plugin.sock'),
    // The same path, written relative to the working directory: the one passed, nothing to tell.
    control: relative(process.cwd(), join(dir, 'control.sock')),
    attach: join(dir, 'elsewhere', 'attach.sock'),
  });
  assert.deepEqual(lines, [
    `plugin socket: the configured ${join(dir, 'plugin.sock')} is not used: socket activation passed ` +
      `${join(dir, 'activated.sock')} (fd ${plugin}), which is served`,
    `attach socket: the configured ${join(dir, 'elsewhere', 'attach.sock')} is not used: socket ` +
      `activation passed ${join(dir, 'attach.sock')} (fd ${attach}), which is served`,
  ]);
  // Nothing configured (defaults), or nothing passed: nothing to tell.
  assert.deepEqual(overriddenSockets(passed, { plugin: null, control: undefined }), []);
  assert.deepEqual(overriddenSockets(new Map(), { plugin: join(dir, 'plugin.sock') }), []);
});

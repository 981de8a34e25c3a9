import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { isSystemdError } from '../../systemd/errors.js';
import { takeListenFds } from '../../systemd/listen-fds.js';
import { findExecutable, requireOrSkip, tools } from './tools.js';

const CHILD = new URL('./children/listen-child.ts', import.meta.url).pathname;

async function request(path: string): Promise<string> {
  const socket = connect(path);
  let data = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    data += chunk;
  });
  await once(socket, 'end');
  return data;
}

test('without LISTEN_FDS the result is empty', () => {
  const fds = takeListenFds({});
  assert.deepEqual(fds.all, []);
  assert.equal(fds.get('plugin'), undefined);
});

test('an env whose LISTEN_FDS differs from the process environment is refused', () => {
  assert.throws(
    () => takeListenFds({ LISTEN_FDS: '7' }),
    (err) => isSystemdError(err, 'SEAWALL_SYSTEMD_ENV_MISMATCH'),
  );
});

test('a child under systemd-socket-activate takes the plugin socket by name and serves it with node:net', async (t) => {
  if (!requireOrSkip(t, tools({ 'systemd-socket-activate': 'systemd' }))) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-activate-'));
  const path = join(dir, 'plugin.sock');
  // Without --accept, systemd-socket-activate listens, waits for the first connection, then
  // execs the child with the listening socket as fd 3, as a .socket unit with Accept=no does.
  const activator = spawn(
    findExecutable('systemd-socket-activate')!,
    ['-l', path, '--fdname=plugin', '-E', 'PATH', '-E', 'HOME', process.execPath, '--import', 'tsx', CHILD],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  t.after(async () => {
    if (activator.exitCode === null && activator.signalCode === null) {
      activator.kill('SIGKILL');
      await once(activator, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const stderr = createInterface({ input: activator.stderr! });
  for await (const line of stderr) {
    if (line.startsWith('Listening on')) break;
    process.stderr.write(`${line}\n`);
  }
  activator.stderr!.resume(); // keep draining: the activator logs each hand-over

  const first = JSON.parse(await request(path));
  assert.deepEqual(first, {
    all: [{ fd: 3, name: 'plugin' }],
    secondTake: 0,
    env: {},
  });
  // The same listening socket keeps serving: the activation handed over the socket, not a connection.
  assert.deepEqual(JSON.parse(await request(path)), first);
  const [code] = await once(activator, 'exit');
  assert.equal(code, 0);
});

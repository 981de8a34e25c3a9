import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { isSystemdError } from '../../systemd/errors.js';
import { takeListenFds } from '../../systemd/listen-fds.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { findExecutable, requireOrSkip, tools } from './tools.js';

const CHILD = new URL('./children/listen-child.ts', import.meta.url).pathname;
const CHECK_CHILD = new URL('./children/listen-check-child.ts', import.meta.url).pathname;

async function request(path: string): Promise<string> {
  const socket = connect(path);
  let data = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    data += chunk;
  });
  await within(`the answer on ${path}`, once(socket, 'end'));
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
  const activator = spawnOwned(
    findExecutable('systemd-socket-activate')!,
    ['-l', path, '--fdname=plugin', '-E', 'PATH', '-E', 'HOME', process.execPath, '--import', 'tsx', CHILD],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  t.after(async () => {
    await killOwned(activator, 'systemd-socket-activate');
    rmSync(dir, { recursive: true, force: true });
  });
  const listening = new Promise<void>((resolve) => {
    // Keeps draining after that: the activator logs each hand-over.
    createInterface({ input: activator.stderr! }).on('line', (line) => {
      if (line.startsWith('Listening on')) resolve();
      else process.stderr.write(`${line}\n`);
    });
  });
  await within('systemd-socket-activate to listen', listening);

  const first = JSON.parse(await request(path));
  assert.deepEqual(first, {
    all: [{ fd: 3, name: 'plugin' }],
    secondTake: 0,
    env: {},
  });
  // The same listening socket keeps serving: the activation handed over the socket, not a connection.
  assert.deepEqual(JSON.parse(await request(path)), first);
  const { code } = await within('the activated child to exit', exitOf(activator));
  assert.equal(code, 0);
});

test('a passed TCP socket is refused by name: the control commands never reach the network', async (t) => {
  if (!requireOrSkip(t, tools({ 'systemd-socket-activate': 'systemd' }))) return;
  const port = 20_000 + (process.pid % 20_000);
  const activator = spawnOwned(
    findExecutable('systemd-socket-activate')!,
    [
      '-l',
      `127.0.0.1:${port}`,
      '--fdname=control',
      '-E',
      'PATH',
      '-E',
      'HOME',
      process.execPath,
      '--import',
      'tsx',
      CHECK_CHILD,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => killOwned(activator, 'systemd-socket-activate'));
  const listening = new Promise<void>((resolve) => {
    createInterface({ input: activator.stderr! }).on('line', (line) => {
      if (line.startsWith('Listening on')) resolve();
    });
  });
  await within('systemd-socket-activate to listen', listening);
  // The first connection makes the activator exec the child with the socket as fd 3.
  const conn = connect({ host: '127.0.0.1', port });
  conn.on('error', () => {});
  t.after(() => conn.destroy());
  const line = await within(
    'the child’s report',
    new Promise<string>((resolve) => createInterface({ input: activator.stdout! }).once('line', resolve)),
  );
  assert.match(JSON.parse(line).error, /passed fd 3 \(control\) is not a listening Unix stream socket/);
});

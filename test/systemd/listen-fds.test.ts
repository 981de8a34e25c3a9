import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { closeFd, connectSeqpacket } from '../../kvm/index.js';
import { isSystemdError } from '../../systemd/errors.js';
import { type ListenFd, type ListenFds, pickListenFds, takeListenFds } from '../../systemd/listen-fds.js';
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
    all: [{ fd: 3, name: 'plugin', type: 'stream' }],
    secondTake: 0,
    env: {},
  });
  // The same listening socket keeps serving: the activation handed over the socket, not a connection.
  assert.deepEqual(JSON.parse(await request(path)), first);
  const { code } = await within('the activated child to exit', exitOf(activator));
  assert.equal(code, 0);
});

/**
 * Runs the check child under systemd-socket-activate with `listen` (its -l and kind options), makes
 * the first connection with `connectFirst` (which execs the child with the socket as fd 3), and
 * returns the child's report.
 */
async function checkChild(
  t: TestContext,
  listen: string[],
  connectFirst: () => () => void,
): Promise<{ all?: ListenFd[]; error?: string }> {
  const activator = spawnOwned(
    findExecutable('systemd-socket-activate')!,
    [...listen, '-E', 'PATH', '-E', 'HOME', process.execPath, '--import', 'tsx', CHECK_CHILD],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => killOwned(activator, 'systemd-socket-activate'));
  const listening = new Promise<void>((resolve) => {
    createInterface({ input: activator.stderr! }).on('line', (line) => {
      if (line.startsWith('Listening on')) resolve();
    });
  });
  await within('systemd-socket-activate to listen', listening);
  t.after(connectFirst());
  const line = await within(
    'the child’s report',
    new Promise<string>((resolve) => createInterface({ input: activator.stdout! }).once('line', resolve)),
  );
  return JSON.parse(line);
}

test('a passed TCP socket is refused by name: the control commands never reach the network', async (t) => {
  if (!requireOrSkip(t, tools({ 'systemd-socket-activate': 'systemd' }))) return;
  const port = 20_000 + (process.pid % 20_000);
  const report = await checkChild(t, ['-l', `127.0.0.1:${port}`, '--fdname=control'], () => {
    const conn = connect({ host: '127.0.0.1', port });
    conn.on('error', () => {});
    return () => conn.destroy();
  });
  assert.match(
    report.error ?? '',
    /passed fd 3 \(control\) is not a listening Unix stream or sequential-packet socket/,
  );
});

test('a passed sequential-packet socket is taken as one, for the attach socket', async (t) => {
  if (!requireOrSkip(t, tools({ 'systemd-socket-activate': 'systemd' }))) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-activate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'attach.sock');
  const report = await checkChild(t, ['--seqpacket', '-l', path, '--fdname=attach'], () => {
    const conn = connectSeqpacket(path);
    return () => closeFd(conn);
  });
  assert.deepEqual(report, { all: [{ fd: 3, name: 'attach', type: 'seqpacket' }] });
});

function passed(all: ListenFd[]): ListenFds {
  return { all };
}

const WANTED = { plugin: 'stream', control: 'stream', attach: 'seqpacket' } as const;

test('each passed socket is picked by its name when it is of the kind that name is served with', () => {
  const picked = pickListenFds(
    passed([
      { fd: 3, name: 'control', type: 'stream' },
      { fd: 4, name: 'attach', type: 'seqpacket' },
      { fd: 5, name: 'plugin', type: 'stream' },
    ]),
    WANTED,
  );
  assert.deepEqual([...picked].sort(), [
    ['attach', 4],
    ['control', 3],
    ['plugin', 5],
  ]);
  // A lone unnamed socket is the plugin socket, as systemd-socket-activate without --fdname passes it.
  assert.deepEqual(
    [...pickListenFds(passed([{ fd: 3, name: 'unknown', type: 'stream' }]), WANTED)],
    [['plugin', 3]],
  );
});

test('a passed socket of the wrong kind for its name is refused, naming the unit line it needs', () => {
  const refused = (all: ListenFd[], message: RegExp) =>
    assert.throws(
      () => pickListenFds(passed(all), WANTED),
      (err) =>
        isSystemdError(err, 'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID') && message.test((err as Error).message),
    );
  refused(
    [{ fd: 3, name: 'attach', type: 'stream' }],
    /fd 3 \(attach\) is a stream socket; the attach socket is made with ListenSequentialPacket=/,
  );
  refused(
    [
      { fd: 3, name: 'plugin', type: 'seqpacket' },
      { fd: 4, name: 'control', type: 'stream' },
    ],
    /fd 3 \(plugin\) is a seqpacket socket; the plugin socket is made with ListenStream=/,
  );
  refused(
    [{ fd: 3, name: 'unknown', type: 'seqpacket' }],
    /fd 3 \(unknown, taken as plugin\) is a seqpacket socket/,
  );
  refused(
    [
      { fd: 3, name: 'plugin', type: 'stream' },
      { fd: 4, name: 'plugin', type: 'stream' },
    ],
    /fd 4 \(plugin\) is a second socket of that name/,
  );
});

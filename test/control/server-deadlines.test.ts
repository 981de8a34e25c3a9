/**
 * The control server's deadlines and its reserved slots, over a real socket: a request dripped a
 * byte at a time, or an answer never read, cannot hold a connection past its absolute deadline;
 * and unprivileged peers holding every slot they may still leave root a way in. Deadlines are
 * injected in milliseconds so the attacks end quickly.
 */
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { controlRequest, isControlError } from '../../control/index.js';
import { runTool } from '../daemon/e2e/run-cli.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { startControl } from './fixture.js';

const CLOSE_DURING_REQUEST = new URL('./children/close-during-request.ts', import.meta.url).pathname;

function connected(path: string): Promise<Socket> {
  return within(
    'a connection to the control socket',
    new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('error', reject);
      s.once('connect', () => resolve(s));
    }),
  );
}

test('a request dripped a byte at a time is closed at its absolute deadline, not kept alive by each byte', async (t) => {
  // Without an absolute deadline the 200 ms idle timer, reset by every byte, never fires.
  const f = await startControl({ idleTimeoutMs: 200, requestTimeoutMs: 400 });
  t.after(() => f.close());
  const s = await connected(f.socket);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => {});
  const started = Date.now();
  let drips = 0;
  s.write('{"id":1,"cmd":"status","args":{"pad":"');
  const drip = setInterval(() => {
    drips++;
    if (!s.destroyed) s.write('x');
  }, 20);
  t.after(() => clearInterval(drip));
  await within('the dripping connection to be closed', closed, { timeoutMs: 5000 });
  clearInterval(drip);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 350, `closed after ${elapsed} ms, before the 400 ms request deadline`);
  assert.ok(drips >= 10, `only ${drips} bytes were dripped: the idle timer was never challenged`);
  // The server itself answers.
  assert.equal((await controlRequest(f.socket, 'status')).version, '0.0.0-test');
});

test('a client that never reads its answers is closed at the write deadline', async (t) => {
  const f = await startControl({ writeTimeoutMs: 300 });
  t.after(() => f.close());
  const s = await connected(f.socket);
  s.on('error', () => {});
  s.pause(); // never read: the answers fill the socket's buffers and the server waits to write
  const request = '{"id":1,"cmd":"status"}\n';
  s.write(request.repeat(20_000));
  await until('the server to close the connection that does not read', () => f.server.connectionCount === 0, {
    timeoutMs: 5000,
    state: () => `${f.server.connectionCount} connection(s) open`,
  });
  s.destroy();
});

test('a request that ends after a stop closed its connection gives its slot back and holds nothing', async () => {
  // Before, the answer waited for a 'drain' or 'close' already past: the slot was never given back
  // and the write deadline set for it (10 minutes there; 30 s in the daemon) held the process.
  const r = await runTool(process.execPath, ['--import', 'tsx', CLOSE_DURING_REQUEST]);
  const out = r.stdout + r.stderr;
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, out);
  assert.match(out, /^slot given back$/m);
});

test('unprivileged peers holding every slot they may leave root two', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('switching to uid 65534 needs root');
    return;
  }
  const f = await startControl({ maxConnections: 4, daemonUid: 0 });
  t.after(() => f.close());
  // Reading is open to whoever the socket's mode lets in.
  chmodSync(dirname(f.socket), 0o755);
  chmodSync(f.dir, 0o755);
  chmodSync(f.socket, 0o666);
  // As uid 65534: open four connections, ask status on each, report how each was answered, and
  // hold the admitted ones open until killed.
  const script = `
    const net = require('node:net');
    const held = [];
    let admitted = 0, busy = 0;
    for (let i = 0; i < 4; i++) {
      const s = net.connect(process.argv[1]);
      held.push(s);
      s.on('error', () => {});
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        if (!buf.includes('\\n')) return;
        if (JSON.parse(buf).ok) admitted++; else busy++;
        buf = '';
        if (admitted + busy === 4) process.stdout.write(JSON.stringify({ admitted, busy }) + '\\n');
      });
      s.write('{"id":1,"cmd":"status"}\\n');
    }
    setInterval(() => {}, 1000);`;
  const child = spawnOwned(process.execPath, ['-e', script, f.socket], { uid: 65534, gid: 65534 });
  t.after(() => killOwned(child, 'the unprivileged client'));
  const line = await within(
    'the unprivileged client to report',
    new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r)),
  );
  assert.deepEqual(JSON.parse(line), { admitted: 2, busy: 2 });
  assert.equal(f.server.connectionCount, 2);
  // Root takes both reserved slots at once …
  const [a, b] = await Promise.all([connected(f.socket), connected(f.socket)]);
  await until('root’s two connections to be admitted', () => f.server.connectionCount === 4);
  a.destroy();
  b.destroy();
  await until('root’s connections to close', () => f.server.connectionCount === 2);
  // … and its commands are answered while the unprivileged peer holds its share.
  assert.equal((await controlRequest(f.socket, 'status')).version, '0.0.0-test');
  assert.deepEqual(await controlRequest(f.socket, 'reload'), { ok: true, version: 'v2', issues: [] });
  // Past the whole bound, root is refused too.
  const held = await Promise.all([connected(f.socket), connected(f.socket)]);
  await until('root’s two connections to be admitted', () => f.server.connectionCount === 4);
  await assert.rejects(controlRequest(f.socket, 'status'), (err) =>
    isControlError(err, 'SEAWALL_CONTROL_BUSY'),
  );
  for (const s of held) s.destroy();
});

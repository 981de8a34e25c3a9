/**
 * Issue 12, item 7: 1,024 connections that never say HELLO are dropped after the pre-HELLO
 * timeout, and a new VM then connects (they used to lock every new VM out).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';

const PEERS = 1024;
const sockets: Socket[] = [];
const daemons: RunningDaemon[] = [];
const dirs: string[] = [];

after(async () => {
  for (const s of sockets) s.destroy();
  for (const d of daemons) {
    await d.kill();
    removeDir(d.dir);
  }
  for (const dir of dirs) removeDir(dir);
});

async function daemonWith(limits: string): Promise<RunningDaemon> {
  const dir = mkdtempSync('/tmp/seawall-conn-');
  dirs.push(dir);
  const config = join(dir, 'seawall.yaml');
  writeFileSync(config, `limits: { maxSessions: 1100, ${limits} }\n`);
  const d = await startDaemon({ args: ['--config', config], metrics: false });
  daemons.push(d);
  return d;
}

/** Connects `n` sockets; `closed` resolves as each closes (watched from the start). */
async function open(path: string, n: number): Promise<{ peers: Socket[]; closed: Promise<void>[] }> {
  const peers: Socket[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(path);
    s.on('error', () => {});
    closed.push(new Promise<void>((r) => s.once('close', () => r())));
    // Read (and discard) what the daemon says, so its closing the connection is seen.
    s.resume();
    await new Promise((r) => s.once('connect', r));
    sockets.push(s);
    peers.push(s);
  }
  return { peers, closed };
}

test('idle connections that never say HELLO are dropped after the timeout; then a VM connects', async () => {
  const d = await daemonWith('helloTimeoutMs: 1000');
  const { closed } = await open(d.socket, PEERS);
  let dropped = 0;
  for (const c of closed) void c.then(() => dropped++);
  await until(() => dropped === PEERS, 60_000, 'every idle connection dropped');
  const c = await RawClient.open(d.socket);
  await c.hello('after-idle');
  c.destroy();
});

/**
 * Issue 12, item 7: 1,024 peers that drip a frame one byte per write keep the daemon's resident
 * memory growth under 64 MiB (docs/security.md); a new VM then still connects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MSG } from '../../protocol/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';

const PEERS = 1024;
const MEMORY_BOUND_KIB = 64 * 1024;
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

test('1,024 peers dripping a 16 KiB HELLO one byte per write: memory stays bounded', async () => {
  const d = await daemonWith('helloTimeoutMs: 600000, frameTimeoutMs: 600000');
  const { peers } = await open(d.socket, PEERS);
  const baseline = d.rssKiB();
  // A HELLO header declaring a 16 KiB body; then its bytes, one per write, round robin.
  const header = Buffer.alloc(8);
  header.writeUInt32LE(16 * 1024, 0);
  header.writeUInt16LE(MSG.HELLO, 4);
  for (const s of peers) s.write(header);
  const ROUNDS = 1200;
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of peers) s.write(Buffer.of(round & 0xff));
    // Let the daemon read between rounds, so each byte arrives as its own chunk.
    await new Promise((r) => setImmediate(r));
  }
  await until(() => d.proc.exitCode === null, 1000, 'the daemon to be up');
  const grown = d.rssKiB() - baseline;
  assert.ok(grown < MEMORY_BOUND_KIB, `RSS grew ${grown} KiB with ${PEERS} dripping peers`);
  const c = await RawClient.open(d.socket);
  await c.hello('after-drip');
  c.destroy();
});

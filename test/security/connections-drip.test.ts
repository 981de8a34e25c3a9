/**
 * Issue 12, item 7: 1,024 peers that drip a frame one byte per write keep the daemon's resident
 * memory growth under 64 MiB (docs/security.md); a new VM then still connects.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MSG } from '../../protocol/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';
import { closePeers, daemonWith, openPeers } from './peers.js';

const PEERS = 1024;
const MEMORY_BOUND_KIB = 64 * 1024;
after(closePeers);

test('1,024 peers dripping a 16 KiB HELLO one byte per write: memory stays bounded', async () => {
  const d = await daemonWith('helloTimeoutMs: 600000, frameTimeoutMs: 600000');
  const { peers } = await openPeers(d.socket, PEERS);
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

/**
 * Issue 12, item 7: 1,024 connections that never say HELLO are dropped after the pre-HELLO
 * timeout, and a new VM then connects (they used to lock every new VM out).
 */
import { after, test } from 'node:test';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';
import { closePeers, daemonWith, openPeers } from './peers.js';

const PEERS = 1024;
after(closePeers);

test('idle connections that never say HELLO are dropped after the timeout; then a VM connects', async () => {
  const d = await daemonWith('helloTimeoutMs: 1000');
  const { closed } = await openPeers(d.socket, PEERS);
  let dropped = 0;
  for (const c of closed) void c.then(() => dropped++);
  await until(() => dropped === PEERS, 60_000, 'every idle connection dropped');
  const c = await RawClient.open(d.socket);
  await c.hello('after-idle');
  c.destroy();
});

/**
 * tcpPeerUid asks the kernel (sock_diag) who owns the other end of a TCP connection made on this
 * host. Real sockets: the test's own connections over IPv4, IPv6 and IPv4-mapped IPv6, and, where
 * the test can switch to it, another uid's.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { type TcpEndpoint, tcpPeerUid } from '../../kvm/index.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

/** A server on `host`; `accepted` resolves with its first connection. Closed, with its connections, after. */
async function listening(t: TestContext, host: string) {
  let onAccept: (s: Socket) => void = () => {};
  const accepted = new Promise<Socket>((r) => {
    onAccept = r;
  });
  const open = new Set<Socket>();
  const server: Server = createServer((s) => {
    open.add(s);
    onAccept(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  t.after(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, accepted };
}

const ends = (s: Socket): [TcpEndpoint, TcpEndpoint] => [
  { address: s.localAddress as string, port: s.localPort as number },
  { address: s.remoteAddress as string, port: s.remotePort as number },
];

for (const [listen, connectTo] of [
  ['127.0.0.1', '127.0.0.1'],
  ['::1', '::1'],
  ['::', '127.0.0.1'], // accepted as ::ffff:127.0.0.1
] as const) {
  test(`finds the test's own uid at the other end (server on ${listen}, client to ${connectTo})`, async (t) => {
    const { port, accepted } = await listening(t, listen);
    const client = connect({ host: connectTo, port });
    client.on('error', () => {});
    t.after(() => client.destroy());
    const s = await within('the connection', accepted);
    assert.equal(tcpPeerUid(...ends(s)), process.getuid?.());
  });
}

test('asks for the peer’s own address, not the server’s (client from 127.0.0.2)', async (t) => {
  const { port, accepted } = await listening(t, '127.0.0.1');
  const client = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
  client.on('error', () => {});
  t.after(() => client.destroy());
  const s = await within('the connection', accepted);
  assert.equal(s.remoteAddress, '127.0.0.2');
  assert.equal(tcpPeerUid(...ends(s)), process.getuid?.());
});

test('null for an end no process holds', async (t) => {
  const { port, accepted } = await listening(t, '127.0.0.1');
  const client = connect({ host: '127.0.0.1', port });
  client.on('error', () => {});
  const s = await within('the connection', accepted);
  const [local, remote] = ends(s);
  client.destroy();
  await within('the client to close', new Promise((r) => s.once('close', r)));
  // Once both ends have closed, the client's end is a time-wait socket, which the kernel reports as
  // root's: it is no one's.
  assert.equal(tcpPeerUid(local, remote), null);
  assert.equal(tcpPeerUid(local, { address: '127.0.0.1', port: 1 }), null, 'a port nobody connected from');
  assert.equal(tcpPeerUid(local, { address: 'not-an-address', port: remote.port }), null);
});

test('finds another user as the owner of a connection it made', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('switching to uid 65534 needs root');
    return;
  }
  const { port, accepted } = await listening(t, '127.0.0.1');
  const script = `
    const s = require('node:net').connect({ host: '127.0.0.1', port: Number(process.argv[1]) }, () =>
      process.stdout.write('connected\\n'));
    s.on('error', () => {});
    setInterval(() => {}, 1000);`;
  const child = spawnOwned(process.execPath, ['-e', script, String(port)], { uid: 65534, gid: 65534 });
  t.after(() => killOwned(child, 'the other user'));
  await within(
    'the other user to connect',
    new Promise((r) => createInterface({ input: child.stdout as Readable }).once('line', r)),
  );
  const s = await within('the connection', accepted);
  assert.equal(tcpPeerUid(...ends(s)), 65534);
});

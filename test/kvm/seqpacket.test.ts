/**
 * SOCK_SEQPACKET + SCM_RIGHTS through the koffi layer, on real sockets: message boundaries hold,
 * a memfd travels as a descriptor and maps to the same bytes, EOF is seen, and nothing leaks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  acceptSeqpacket,
  closeFd,
  connectSeqpacket,
  createStandInVcpuFd,
  listenSeqpacket,
  peerHungUp,
  RunPage,
  readableNow,
  recvWithFds,
  sendWithFds,
  watchReadable,
} from '../../kvm/index.js';

const openFds = () => readdirSync('/proc/self/fd').length;

function pair(path: string): { listen: number; client: number; server: number } {
  const listen = listenSeqpacket(path, 0o600);
  const client = connectSeqpacket(path);
  const server = acceptSeqpacket(listen);
  assert.ok(server !== null);
  return { listen, client, server };
}

test('messages keep their boundaries and carry a memfd that maps to the same page', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sp-'));
  const path = join(dir, 'a.sock');
  const { listen, client, server } = pair(path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const memfd = createStandInVcpuFd('test-vcpu', 4096);
  const page = RunPage.map(memfd, 4096, true);
  page.bytes[100] = 0xab;
  try {
    assert.equal(recvWithFds(server), null);
    assert.equal(sendWithFds(client, Buffer.from('first'), [memfd]), true);
    assert.equal(sendWithFds(client, Buffer.from('second!')), true);
    const readable = new Promise<void>((resolve) => {
      const w = watchReadable(server, () => {
        w.close();
        resolve();
      });
    });
    await readable;
    const m1 = recvWithFds(server);
    assert.ok(m1 && m1 !== 'eof');
    assert.equal(m1.data.toString(), 'first');
    assert.equal(m1.fds.length, 1);
    assert.equal(m1.truncated, false);
    const got = RunPage.map(m1.fds[0] as number, 4096);
    assert.equal(got.bytes[100], 0xab);
    page.bytes[100] = 0xcd;
    assert.equal(got.bytes[100], 0xcd, 'a shared mapping of the same memfd');
    got.unmap();
    closeFd(m1.fds[0] as number);
    const m2 = recvWithFds(server);
    assert.ok(m2 && m2 !== 'eof');
    assert.equal(m2.data.toString(), 'second!');
    assert.deepEqual(m2.fds, []);
    closeFd(client);
    assert.equal(readableNow(server), true);
    assert.equal(recvWithFds(server), 'eof');
  } finally {
    page.unmap();
    closeFd(memfd);
    closeFd(server);
    closeFd(listen);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a full set of descriptors arrives and none leak', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sp-'));
  const { listen, client, server } = pair(join(dir, 'b.sock'));
  const before = openFds();
  const memfds = Array.from({ length: 8 }, (_, i) => createStandInVcpuFd(`v${i}`, 4096));
  try {
    sendWithFds(client, Buffer.from('x'), memfds);
    const m = recvWithFds(server);
    assert.ok(m && m !== 'eof');
    assert.equal(m.fds.length, 8);
    for (const f of m.fds) closeFd(f);
  } finally {
    for (const f of memfds) closeFd(f);
  }
  assert.equal(openFds(), before);
  closeFd(client);
  closeFd(server);
  closeFd(listen);
  rmSync(dir, { recursive: true, force: true });
});

test('connecting to a path nobody serves is a typed error', () => {
  assert.throws(() => connectSeqpacket('/nonexistent/seawall.sock'), { code: 'SEAWALL_KVM_SYSCALL' });
});

test('a peer that closed is seen hung up while the records it sent still wait to be read', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sp-'));
  const { listen, client, server } = pair(join(dir, 'h.sock'));
  t.after(() => {
    for (const fd of [listen, server]) closeFd(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(peerHungUp(server), false, 'connected, nothing sent');
  sendWithFds(client, Buffer.from('queued'));
  assert.equal(peerHungUp(server), false, 'a record waiting is not a hang-up');
  closeFd(client);
  assert.equal(peerHungUp(server), true, 'the peer closed');
  const m = recvWithFds(server);
  assert.ok(m !== null && m !== 'eof');
  assert.equal(m.data.toString(), 'queued', 'what it sent before is still there to read');
  assert.equal(recvWithFds(server), 'eof');
});

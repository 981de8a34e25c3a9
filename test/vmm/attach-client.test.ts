/**
 * The attach client's reply deadline, against a real SOCK_SEQPACKET listener that accepts the
 * connection and never answers: each request fails with AttachTimeoutError instead of waiting for
 * ever, the connection is closed (the daemon would see it end), and requests behind it fail too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { acceptSeqpacket, closeFd, listenSeqpacket, peerHungUp } from '../../kvm/index.js';
import { AttachClient, AttachTimeoutError, StandInVcpus } from '../../vmm/attach-client.js';
import { isVmmError } from '../../vmm/errors.js';
import { within } from '../helpers/wait.js';

test('a daemon that accepts and never answers: the requests fail with AttachTimeoutError and the connection closes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-attach-silent-'));
  const listen = listenSeqpacket(join(dir, 'attach.sock'), 0o600);
  const vcpus = new StandInVcpus(2);
  const client = AttachClient.connect(join(dir, 'attach.sock'), { replyTimeoutMs: 200 });
  const server = acceptSeqpacket(listen);
  t.after(() => {
    client.close();
    vcpus.close();
    closeFd(server ?? -1);
    closeFd(listen);
    rmSync(dir, { recursive: true, force: true });
  });
  assert.ok(server !== null, 'the listener accepted the connection');
  const timedOut = (err: unknown) =>
    err instanceof AttachTimeoutError && isVmmError(err) && err.code === 'SEAWALL_VMM_ATTACH_TIMEOUT';
  const first = client.attach(1n, 0, vcpus.fds[0] as number);
  const second = client.attach(1n, 1, vcpus.fds[1] as number);
  await within('the first attach to fail', assert.rejects(first, timedOut));
  await within('the second attach to fail', assert.rejects(second, timedOut));
  // Closed by the client as the first failed: the daemon's end sees the hang-up, and a new request
  // fails at once.
  assert.ok(peerHungUp(server), 'the connection is closed');
  await within('a request on the closed connection', assert.rejects(client.detach(1n, 0), /closed/));
});

test('replyTimeoutMs outside 1..2^31-1 ms is an invalid option', () => {
  for (const replyTimeoutMs of [0, -1, 1.5, 2 ** 31])
    assert.throws(
      () => AttachClient.connect('/nonexistent/attach.sock', { replyTimeoutMs }),
      (e: unknown) => isVmmError(e) && e.code === 'SEAWALL_VMM_INVALID_OPTION',
      String(replyTimeoutMs),
    );
});

/**
 * The host-wide bound on attached vCPUs (`attach.maxVcpus`, attach/vcpu-pages.ts): each takes an fd
 * and a mapping of the daemon's, so one plugin passing one fd for every vCPU of a large vcpu_count,
 * or many sessions doing so, would exhaust the daemon's fds and vm.max_map_count. Past the bound an
 * ATTACH gets LIMIT, the connection stays, and a vCPU already attached can still be attached again.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { ATTACH_STATUS } from '../../protocol/index.js';
import { AttachClient, AttachRefusedError, StandInVcpus } from '../../vmm/attach-client.js';
import { attachStack } from './stack.js';

const MAX_VCPUS = 4;
const VCPUS = 64;

const limited = (err: unknown) => err instanceof AttachRefusedError && err.status === ATTACH_STATUS.LIMIT;

test('past attach.maxVcpus, all sessions together, an ATTACH gets LIMIT and takes no fd', async (t) => {
  const notices: string[] = [];
  const { attach, own, plugin } = await attachStack(t, {
    maxVcpus: MAX_VCPUS,
    onNotice: (message) => notices.push(message),
  });
  const a = await plugin('vm-a', VCPUS);
  const b = await plugin('vm-b', VCPUS);
  const vcpus = new StandInVcpus(1);
  own(() => vcpus.close());
  const clientA = AttachClient.connect(attach.address);
  const clientB = AttachClient.connect(attach.address);
  own(() => clientA.close());
  own(() => clientB.close());
  const one = vcpus.fds[0] as number;
  const sessionA = a.sessionId as bigint;
  const sessionB = b.sessionId as bigint;

  // One stand-in passed for every vCPU: the first MAX_VCPUS take an fd and a mapping each.
  for (let i = 0; i < MAX_VCPUS - 1; i++) await clientA.attach(sessionA, i, one);
  await clientB.attach(sessionB, 0, one);
  const fds = readdirSync('/proc/self/fd').length;
  for (let i = MAX_VCPUS - 1; i < VCPUS; i++) await assert.rejects(clientA.attach(sessionA, i, one), limited);
  await assert.rejects(clientB.attach(sessionB, 1, one), limited);
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'refused fds are closed');
  assert.equal(attach.pages.total, MAX_VCPUS);
  assert.equal(attach.stats.refused.limit, VCPUS - MAX_VCPUS + 2);
  assert.equal(attach.stats.attached, MAX_VCPUS);
  assert.ok(notices.includes('vCPU attach refused: limit'), notices.join('\n'));

  // The connections stay: an attached vCPU is attached again (its fd replaced), and one detached
  // makes room for another.
  await clientA.attach(sessionA, 0, one);
  await clientA.detach(sessionA, 1);
  await clientB.attach(sessionB, 1, one);
  await assert.rejects(clientA.attach(sessionA, 1, one), limited);
  assert.equal(attach.pages.total, MAX_VCPUS);
});

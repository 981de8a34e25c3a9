/**
 * The vCPU attach channel end to end, in-process: the real plugin server and pipeline, the attach
 * server on a real SOCK_SEQPACKET socket, and memfd stand-ins in place of KVM vCPU fds — the only
 * stand-in for the kernel here (a stand-in page is written the way KVM writes kvm_run).
 */
import assert from 'node:assert/strict';
import { openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import type { AttachServer } from '../../attach/index.js';
import { NOT_ABORT_RULE } from '../../daemon/safe-decision.js';
import {
  closeFd,
  connectSeqpacket,
  createStandInVcpuFd,
  KVM_RUN_DEFAULT_MMAP_SIZE,
  RunPage,
  recvWithFds,
  seaExit,
  sendWithFds,
  watchReadable,
} from '../../kvm/index.js';
import { ACTION, ATTACH_OP, CAP, encodeAttachRequest } from '../../protocol/index.js';
import { AttachClient, AttachRefusedError, StandInVcpus } from '../../vmm/attach-client.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { runFile as run } from '../helpers/processes.js';
import { WAIT_MS, within } from '../helpers/wait.js';
import { INJECT, provider, type Stack, standInAttachServer, startStack } from './stack.js';

const FOREIGN = new URL('./children/foreign-attach.ts', import.meta.url).pathname;
const DABT_SEA = (0x24n << 26n) | (1n << 25n) | 0x10n;
const FNV = 1n << 10n;
const POISON = 0x8000_0000n;

let stack: Stack;
let attach: AttachServer;
const closedConns: Array<() => void> = [];

before(async () => {
  const server: { a: AttachServer | null } = { a: null };
  stack = await startStack(
    // A page in the poisoned range kills; anything else gets the data abort.
    provider((e) => (e.gpa === POISON ? { rule: 'poisoned-range', action: 'kill', graceMs: 1000 } : INJECT)),
    (s, v) => server.a?.kernelExit(s, v) ?? null,
  );
  attach = standInAttachServer(stack.dir, {
    idleMs: 5000,
    onConnectionClosed: () => {
      for (const f of closedConns.splice(0)) f();
    },
  });
  attach.listen();
  server.a = attach;
  stack.bus.add(attach.sink());
});

after(async () => {
  attach.close();
  await stack.close();
});

async function plugin(vmId: string, vcpuCount = 2): Promise<PluginClient> {
  const c = new PluginClient({
    socket: stack.socket,
    vmId,
    vcpuCount,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  return c;
}

const connectionClosed = () =>
  within(
    'the attach server to close a connection',
    new Promise<void>((resolve) => closedConns.push(resolve)),
  );

test('the verdict is decided on the kernel page, not on what the plugin claims', async () => {
  const c = await plugin('vm-page');
  const vcpus = new StandInVcpus(2);
  const ac = AttachClient.connect(attach.address);
  try {
    await vcpus.attachAll(ac, c.sessionId as bigint);
    assert.equal(attach.pages.count(c.sessionId as bigint), 2);
    // The kernel says: FnV set (no GVA), GPA in the poisoned range. The plugin says otherwise.
    vcpus.write(1, seaExit(DABT_SEA | FNV, 0n, POISON));
    const before = attach.stats.mismatchedEvents;
    const out = await c.handleExit({
      type: 'sea',
      vcpu: 1,
      kvmFlags: 1n,
      esr: DABT_SEA,
      gva: 0x4000n,
      gpa: 0x1000n,
    });
    assert.equal(out.source, 'daemon');
    assert.equal(out.verdict.action, ACTION.KILL, 'decided on the page GPA');
    const r = stack.records.at(-1);
    assert.ok(r);
    assert.equal(r.event.gpa, POISON);
    assert.equal(r.event.esr?.abort?.fnv, true);
    assert.deepEqual(r.kernelMismatch, ['esr', 'gva', 'gpa']);
    // A plugin that lies is counted.
    assert.equal(attach.stats.mismatchedEvents, before + 1);
    assert.equal(attach.stats.mismatchedFields.esr, 1);
    // When page and plugin agree, nothing is counted and the plugin's values stand.
    vcpus.write(0, seaExit(DABT_SEA, 0x2000n, 0x3000n));
    const ok = await c.handleExit({
      type: 'sea',
      vcpu: 0,
      kvmFlags: 1n,
      esr: DABT_SEA,
      gva: 0x2000n,
      gpa: 0x3000n,
    });
    assert.equal(ok.verdict.action, ACTION.INJECT);
    assert.deepEqual(stack.records.at(-1)?.kernelMismatch, []);
    assert.equal(attach.stats.mismatchedEvents, before + 1);
  } finally {
    ac.close();
    vcpus.close();
    await c.close();
  }
});

test('a page whose last exit is not an abort exit: RESUME, nothing injected, exit_reason a mismatch', async () => {
  const c = await plugin('vm-odd-exit', 1);
  const vcpus = new StandInVcpus(1);
  const ac = AttachClient.connect(attach.address);
  try {
    await vcpus.attachAll(ac, c.sessionId as bigint);
    vcpus.write(0, seaExit(DABT_SEA, 0n, POISON));
    // Overwrite exit_reason (offset 8) with KVM_EXIT_HYPERCALL (2): not an abort exit, after which
    // an injection is a programming error (reference §3). The plugin still claims a SEA.
    const before = attach.pages.stats.unknownExit;
    const mismatched = attach.stats.mismatchedEvents;
    const exitReasons = attach.stats.mismatchedFields.exit_reason ?? 0;
    const rw = RunPage.map(vcpus.fds[0] as number, KVM_RUN_DEFAULT_MMAP_SIZE, true);
    new DataView(rw.bytes.buffer, rw.bytes.byteOffset).setUint32(8, 2, true);
    rw.unmap();
    const out = await c.handleExit({
      type: 'sea',
      vcpu: 0,
      kvmFlags: 1n,
      esr: DABT_SEA,
      gva: 0n,
      gpa: 0x1000n,
    });
    assert.equal(out.source, 'daemon');
    assert.equal(out.verdict.action, ACTION.RESUME, 'nothing injected on the plugin copy');
    assert.ok(
      out.verdict.vcpuEvents.every((b) => b === 0),
      'no vcpu_events image',
    );
    const r = stack.records.at(-1);
    assert.deepEqual(r?.kernelMismatch, ['exit_reason']);
    assert.equal(r?.decision?.rule, NOT_ABORT_RULE);
    assert.equal(attach.pages.stats.unknownExit, before + 1);
    assert.equal(attach.stats.mismatchedEvents, mismatched + 1);
    assert.equal(attach.stats.mismatchedFields.exit_reason, exitReasons + 1);
  } finally {
    ac.close();
    vcpus.close();
    await c.close();
  }
});

test('refusals: unknown session, vCPU out of range, unsealed or non-memfd fds, another process', async () => {
  const c = await plugin('vm-refusals', 2);
  const ac = AttachClient.connect(attach.address);
  const vcpus = new StandInVcpus(3);
  const status = (p: Promise<void>) =>
    p.then(
      () => 0,
      (e: AttachRefusedError) => e.status,
    );
  try {
    const sid = c.sessionId as bigint;
    assert.equal(await status(ac.attach(sid + 1000n, 0, vcpus.fds[0] as number)), 3, 'unknown session');
    assert.equal(await status(ac.attach(sid, 2, vcpus.fds[2] as number)), 5, 'vCPU index ≥ vcpu_count');
    const unsealed = createStandInVcpuFd('unsealed', KVM_RUN_DEFAULT_MMAP_SIZE);
    assert.equal(await status(ac.attach(sid, 0, unsealed)), 6, 'a memfd that could shrink');
    closeFd(unsealed);
    const devnull = openSync('/dev/null', 'r');
    assert.equal(await status(ac.attach(sid, 0, devnull)), 6, 'not a vCPU fd');
    closeFd(devnull);
    assert.equal(await status(ac.detach(sid, 1)), 7, 'nothing attached');
    assert.equal(await status(ac.attach(sid, 1, vcpus.fds[1] as number)), 0);
    assert.equal(await status(ac.detach(sid, 1)), 0);
    assert.equal(attach.pages.count(sid), 0);
    // Same uid, another pid: SO_PEERCRED says it is not the process that holds the session.
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', FOREIGN, attach.address, String(sid)],
      {
        timeout: WAIT_MS,
      },
    );
    assert.deepEqual(JSON.parse(stdout), { status: 4 });
    assert.ok((attach.stats.refused.peer_mismatch ?? 0) >= 1);
  } finally {
    ac.close();
    vcpus.close();
    await c.close();
  }
});

/**
 * An attach server of its own with a 300 ms idleMs, a plugin session of `vm`, one stand-in vCPU
 * fd and two attach connections, all closed after the test. `nextClose()` resolves when the server
 * next closes a connection.
 */
async function idleServer(t: TestContext, vm: string) {
  const closings: Array<() => void> = [];
  const short = standInAttachServer(stack.dir, {
    path: join(stack.dir, `attach-${vm}.sock`),
    maxConnections: 4,
    idleMs: 300,
    onConnectionClosed: () => closings.shift()?.(),
  });
  short.listen();
  stack.bus.add(short.sink()); // its sessions; the server closed, the sink is a no-op
  t.after(() => short.close());
  const nextClose = () =>
    within('the attach server to close a connection', new Promise<void>((r) => closings.push(r)));
  const c = await plugin(vm, 2);
  const sid = c.sessionId as bigint;
  const vcpus = new StandInVcpus(1);
  const conns = [AttachClient.connect(short.address), AttachClient.connect(short.address)] as const;
  t.after(async () => {
    for (const conn of conns) conn.close();
    vcpus.close();
    await c.close();
  });
  return { short, nextClose, sid, fd: vcpus.fds[0] as number, conns };
}

test('a connection whose requests are all refused is closed at idleMs: only what it holds keeps it', async (t) => {
  // Refusals that name the session once cleared the idle timer: one plugin could hold every slot.
  const { short, nextClose, sid, fd, conns } = await idleServer(t, 'vm-idle');
  const [refused, holding] = conns;
  const first = nextClose();
  await assert.rejects(refused.detach(sid, 0), (e: AttachRefusedError) => e.status === 7);
  await holding.attach(sid, 0, fd);
  await first;
  assert.equal(short.connectionCount, 1, 'the one holding a vCPU stays');
  assert.equal(short.pages.count(sid), 1);
  // Its last vCPU detached, it holds nothing: idleMs to attach another, then it goes too.
  const second = nextClose();
  await holding.detach(sid, 0);
  await second;
  assert.equal(short.connectionCount, 0);
});

test('a connection whose last vCPU another connection took over is closed at idleMs', async (t) => {
  const { short, nextClose, sid, fd, conns } = await idleServer(t, 'vm-takeover');
  const [first, second] = conns;
  await first.attach(sid, 0, fd);
  const closed = nextClose();
  // vCPU 0 again, from the other connection: the first now holds nothing, and must not keep a slot.
  await second.attach(sid, 0, fd);
  await closed;
  assert.equal(short.connectionCount, 1, 'the one holding the vCPU stays');
  assert.equal(short.pages.count(sid), 1);
});

test('a malformed record gets MALFORMED and the connection is closed', async () => {
  const fd = connectSeqpacket(attach.address);
  try {
    const closed = connectionClosed();
    sendWithFds(fd, Buffer.from('not an attach record'));
    await closed;
    const reply = await within(
      'the MALFORMED reply',
      new Promise<Buffer>((resolve) => {
        const w = watchReadable(fd, () => {
          const m = recvWithFds(fd);
          if (m === null) return;
          w.close();
          assert.ok(m !== 'eof');
          resolve(m.data);
        });
      }),
    );
    assert.equal(reply.readUInt32LE(12), 1);
    assert.equal(recvWithFds(fd), 'eof');
  } finally {
    closeFd(fd);
  }
});

test('what a plugin queued on an attach connection it then closed is not carried out', async () => {
  // A plugin whose wait for a reply ran out closes that connection and attaches again on a fresh
  // one; a daemon slow to read could still find the old request queued. Carried out, it would take
  // the vCPU over from the live connection, and release it at the old one's end.
  const c = await plugin('vm-hung-up', 2);
  const sid = c.sessionId as bigint;
  const vcpus = new StandInVcpus(2);
  const live = AttachClient.connect(attach.address);
  try {
    await live.attach(sid, 1, vcpus.fds[1] as number);
    assert.equal(attach.pages.count(sid), 1);
    const closed = connectionClosed();
    // Connected, sent and closed within one turn: the server accepts and reads it only afterwards.
    const stale = connectSeqpacket(attach.address);
    sendWithFds(stale, encodeAttachRequest({ op: ATTACH_OP.ATTACH, sessionId: sid, vcpu: 1 }), [
      vcpus.fds[1] as number,
    ]);
    closeFd(stale);
    await closed;
    assert.equal(attach.pages.count(sid), 1, 'vCPU 1 is still attached, over the live connection');
    // The live connection still holds it: an event of vCPU 1 is decided on its page.
    vcpus.write(1, seaExit(DABT_SEA | FNV, 0n, POISON));
    const out = await c.handleExit({
      type: 'sea',
      vcpu: 1,
      kvmFlags: 1n,
      esr: DABT_SEA,
      gva: 0x4000n,
      gpa: 0x1000n,
    });
    assert.equal(out.verdict.action, ACTION.KILL, 'decided on the page GPA');
  } finally {
    live.close();
    vcpus.close();
    await c.close();
  }
});

test('ending the session releases its attachments and closes its attach connection', async () => {
  const c = await plugin('vm-ends', 2);
  const vcpus = new StandInVcpus(2);
  const ac = AttachClient.connect(attach.address);
  await vcpus.attachAll(ac, c.sessionId as bigint);
  const sid = c.sessionId as bigint;
  assert.equal(attach.pages.count(sid), 2);
  const closed = connectionClosed();
  await c.close();
  await closed;
  assert.equal(attach.pages.count(sid), 0);
  await assert.rejects(ac.attach(sid, 0, vcpus.fds[0] as number), AttachRefusedError);
  ac.close();
  vcpus.close();
});

test('1,000 attach/detach cycles leave the fd count where it started', async () => {
  const c = await plugin('vm-cycles', 2);
  const vcpus = new StandInVcpus(2);
  const sid = c.sessionId as bigint;
  const fds = () => readdirSync('/proc/self/fd').length;
  try {
    // Warm up lazily created state (bindings, scratch) before counting.
    const warm = AttachClient.connect(attach.address);
    await warm.attach(sid, 0, vcpus.fds[0] as number);
    let closed = connectionClosed();
    warm.close();
    await closed;
    const start = fds();
    for (let i = 0; i < 1000; i++) {
      const ac = AttachClient.connect(attach.address);
      await ac.attach(sid, i % 2, vcpus.fds[i % 2] as number);
      if (i % 2 === 0) await ac.detach(sid, 0); // explicit detach, then close
      closed = connectionClosed(); // odd cycles: closing the connection releases the vCPU
      ac.close();
      await closed;
    }
    assert.equal(attach.pages.count(sid), 0);
    assert.equal(attach.connectionCount, 0);
    assert.equal(fds(), start);
  } finally {
    vcpus.close();
    await c.close();
  }
});

test('refused fds are closed: 100 refusals of each kind leave the fd count where it started', async () => {
  const c = await plugin('vm-refused-fds', 2);
  const sid = c.sessionId as bigint;
  const fds = () => readdirSync('/proc/self/fd').length;
  const ac = AttachClient.connect(attach.address);
  const refused = (p: Promise<void>) =>
    p.then(
      () => assert.fail('attached'),
      (e: AttachRefusedError) => e.status,
    );
  const devnull = openSync('/dev/null', 'r');
  const unsealed = createStandInVcpuFd('unsealed', KVM_RUN_DEFAULT_MMAP_SIZE);
  try {
    await refused(ac.attach(sid, 0, devnull)); // warm-up: lazily created state is not a leak
    const start = fds();
    for (let i = 0; i < 100; i++) {
      assert.equal(await refused(ac.attach(sid, 0, devnull)), 6, 'not a vCPU fd');
      assert.equal(await refused(ac.attach(sid, 0, unsealed)), 6, 'a memfd that could shrink');
      assert.equal(await refused(ac.attach(sid, 2, devnull)), 5, 'vCPU index ≥ vcpu_count');
    }
    assert.equal(fds(), start, 'the daemon kept no refused fd');
  } finally {
    closeFd(devnull);
    closeFd(unsealed);
    ac.close();
    await c.close();
  }
});

test('the simulator with stand-in vCPUs: every event is cross-checked and page and plugin agree', async () => {
  const { simulate } = await import('../../vmm/simulator.js');
  const before = stack.records.length;
  const mismatches = attach.stats.mismatchedEvents;
  const summary = await simulate({
    socket: stack.socket,
    vms: 2,
    vcpus: 2,
    events: 200,
    vmPrefix: 'sim-standin',
    deadlineMs: PATIENT_DEADLINE_MS,
    standIns: { attachSocket: attach.address },
  });
  assert.equal(summary.answered, 200);
  const recs = stack.records.slice(before).filter((r) => r.msg.type !== 'sigbus');
  assert.ok(recs.length > 0);
  assert.ok(recs.every((r) => r.kernelMismatch !== null && r.kernelMismatch.length === 0));
  assert.equal(attach.stats.mismatchedEvents, mismatches);
});

/**
 * How a session ends, on the in-process daemon core (test/attach/stack.ts): what was received
 * before a GOODBYE or a bad frame is decided and durable before anything of it is written, replays
 * included, and the final frame comes last; the daemon's own pause of a socket never counts
 * against the peer's frame timeout; one session's replay flood does not hold another's back, nor
 * do floods that fill the bound over all sessions hold back a VM sending the replays it kept.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { after, test } from 'node:test';
import { MAX_REPLAY_BACKLOG, REPLAY_SHARE_BOUND } from '../../daemon/pipeline.js';
import { PluginSession } from '../../daemon/session.js';
import { encodeMessage, type Message, MSG, WIRE_ERROR } from '../../protocol/index.js';
import { seaFrame } from '../../vmm/sample-events.js';
import { INJECT, provider, type Stack, startStack } from '../attach/stack.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from '../helpers/wait.js';

const HELLO11 = { minor: 1, caps: 0x13 };
const stacks: Stack[] = [];
after(async () => {
  for (const s of stacks) await s.close();
});

async function stack(limits: Parameters<typeof startStack>[2] = {}) {
  const s = await startStack(
    provider(() => INJECT),
    undefined,
    limits,
  );
  stacks.push(s);
  // What reached the durable sinks, per VM: replays and live events.
  const durable = new Map<string, number>();
  s.bus.add({
    name: 'durable',
    beforeReply: (batch) => {
      for (const r of batch) durable.set(r.session.vm.id, (durable.get(r.session.vm.id) ?? 0) + 1);
    },
  });
  return { s, durable: (vm: string) => durable.get(vm) ?? 0 };
}

/** A 56-byte MMIO frame. */
const mmio = (seq: number) =>
  encodeMessage({
    type: 'mmio',
    seq,
    vcpu: 0,
    timeNs: 1n,
    replay: false,
    fallbackAction: 0,
    physAddr: 0x8000000n,
    data: new Uint8Array(8),
    len: 8,
    isWrite: false,
  });

const replay = (seq: number) =>
  seaFrame(seq, { replay: true, fallbackAction: 1, timeNs: 1_767_225_600_000_000_000n + BigInt(seq) });

test('an event and a GOODBYE or a bad frame in one read: the verdict is written after the event is durable', async () => {
  const { s } = await stack();
  const order: string[] = [];
  s.bus.add({ name: 'order', beforeReply: (b) => order.push(`durable ${b.length}`) });
  // The daemon's side of the socket: every VERDICT frame it writes, in order with the sinks.
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
    const server = (this as Socket & { server?: unknown }).server;
    if (server && Buffer.isBuffer(chunk) && chunk.length >= 8 && chunk.readUInt16LE(4) === MSG.VERDICT)
      order.push('verdict written');
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  try {
    const tails: [string, Buffer][] = [
      ['goodbye', encodeMessage({ type: 'goodbye', reason: 0 })],
      ['bad frame', Buffer.from([4, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0])],
    ];
    for (const [what, tail] of tails) {
      order.length = 0;
      const c = await RawClient.open(s.socket);
      await c.hello(`vm-then-${what.replace(' ', '-')}`, HELLO11);
      c.send(Buffer.concat([seaFrame(1, { timeNs: 1n }), tail]));
      await c.closed;
      assert.deepEqual(order, ['durable 1', 'verdict written'], `event + ${what}`);
      const types = c.received.map((m) => m.type);
      assert.deepEqual(types, ['welcome', 'verdict', what === 'goodbye' ? 'goodbye' : 'error'], what);
    }
  } finally {
    Socket.prototype.write = write;
  }
});

test('a refused replay: no HEARTBEAT echo behind it, which would tell the plugin its replays were stored', async () => {
  const { s, durable } = await stack();
  const c = await RawClient.open(s.socket);
  await c.hello('vm-refused-replay', HELLO11);
  // vCPU 9 of the 4 declared: refused when the replay is decided, with replays behind it unread.
  const bad = seaFrame(100, { replay: true, fallbackAction: 1, vcpu: 9, timeNs: 1n });
  c.send(Buffer.concat([bad, replay(101), replay(102), encodeMessage({ type: 'heartbeat', nonce: 7n })]));
  await c.closed;
  assert.deepEqual(
    c.received.map((m) => m.type),
    ['welcome', 'error'],
  );
  assert.equal(durable('vm-refused-replay'), 0, 'nothing of it stored: the plugin must keep every one');
});

test('a bad frame behind a GOODBYE in the same read is not reported: the session closed normally', async () => {
  const { s } = await stack();
  const errors: string[] = [];
  s.bus.add({ name: 'errors', protocolError: (reason, detail) => errors.push(`${reason}: ${detail}`) });
  const c = await RawClient.open(s.socket);
  await c.hello('vm-bye-then-garbage', HELLO11);
  const garbage = Buffer.from([4, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0]);
  c.send(Buffer.concat([encodeMessage({ type: 'goodbye', reason: 0 }), garbage]));
  await c.closed;
  assert.deepEqual(
    c.received.map((m) => m.type),
    ['welcome', 'goodbye'],
  );
  // Shown against the same frame on an open session: that one is reported.
  const open = await RawClient.open(s.socket);
  await open.hello('vm-garbage', HELLO11);
  open.send(garbage);
  await open.closed;
  assert.equal(errors.length, 1, errors.join('; '));
});

test('replays sent before a GOODBYE are all stored, and the GOODBYE answers after them', async () => {
  const { s, durable } = await stack();
  const c = await RawClient.open(s.socket);
  await c.hello('vm-replays-then-goodbye', HELLO11);
  const frames = Array.from({ length: 200 }, (_, i) => replay(i + 1));
  c.send(Buffer.concat([...frames, encodeMessage({ type: 'goodbye', reason: 2 })]));
  await c.waitFor('goodbye');
  assert.equal(durable('vm-replays-then-goodbye'), 200, 'every replay durable when GOODBYE arrives');
  await c.closed;
});

test('replays, a HEARTBEAT and a GOODBYE behind 4,000 unread verdicts: every frame reaches the plugin', async () => {
  const { s, durable } = await stack();
  const c = await RawClient.open(s.socket);
  await c.hello('vm-slow-reader', HELLO11);
  c.socket.pause(); // the plugin reads later: the verdicts wait in the daemon's write buffer
  const live = Array.from({ length: 4000 }, (_, i) => seaFrame(i + 1, { timeNs: 1n }));
  const tail = [replay(9999), encodeMessage({ type: 'heartbeat', nonce: 7n })];
  c.send(Buffer.concat([...live, ...tail, encodeMessage({ type: 'goodbye', reason: 0 })]));
  await until('every event to be durable', () => durable('vm-slow-reader') === 4001);
  c.socket.resume();
  await c.closed;
  const types = c.received.map((m: Message) => m.type);
  assert.equal(types.filter((t) => t === 'verdict').length, 4000);
  assert.deepEqual(types.slice(-2), ['heartbeat', 'goodbye'], 'the echo, then GOODBYE, last');
});

test('a socket the daemon stops reading (its verdicts unread) is not ended by the frame timeout', async () => {
  // MMIO frames: a 64 KiB read ends part-way through one.
  const { s } = await stack({ frameTimeoutMs: 300, writeHighWater: 16 * 1024 });
  const c = await RawClient.open(s.socket);
  await c.hello('vm-held', HELLO11);
  c.socket.pause();
  const frames = Array.from({ length: 20_000 }, (_, i) => mmio(i + 1));
  c.send(Buffer.concat(frames));
  // Held by its own write backlog with part of a frame read: three frame timeouts pass.
  await until('the daemon to stop reading the session', () => s.server.heldCount === 1);
  await new Promise((resolve) => setTimeout(resolve, 900));
  c.socket.resume();
  await c.waitFor('verdict', (m) => m.seq === 20_000);
  assert.equal(c.received.filter((m) => m.type === 'error').length, 0);
  c.destroy();
});

test('the least writeHighWater the config accepts does not leave a session unread after its plugin stalls', async () => {
  // 4096 is daemon/config.ts's minimum, below the socket's own high-water mark (16 KiB in Node 20):
  // a hold taken at 4096 unwritten bytes, with no write() having returned false, got no 'drain'.
  const { s, durable } = await stack({ writeHighWater: 4096 });
  const c = await RawClient.open(s.socket);
  await c.hello('vm-stalled', HELLO11);
  c.socket.pause(); // the plugin stops reading
  // Small batches, each decided before the next is sent: the daemon's unwritten bytes grow ~2 KiB
  // at a time once the kernel's buffers are full, so they pass 4096 well before 16 KiB.
  let seq = 0;
  while (s.server.heldCount === 0) {
    const batch = Array.from({ length: 100 }, () => mmio(++seq));
    c.send(Buffer.concat(batch));
    const sent = seq;
    await until(
      'the batch decided or the session held',
      () => durable('vm-stalled') === sent || s.server.heldCount > 0,
    );
  }
  c.socket.resume(); // and reads again: the session is read again once its verdicts are
  c.send(Buffer.concat([mmio(++seq), encodeMessage({ type: 'heartbeat', nonce: 42n })]));
  await c.waitFor('heartbeat', (m) => m.nonce === 42n);
  const last = seq;
  await c.waitFor('verdict', (m) => m.seq === last);
  assert.equal(c.received.filter((m) => m.type === 'verdict').length, seq);
  c.destroy();
});

test('a frame left half-sent past the frame timeout ends the session with BAD_FRAME', async () => {
  const { s } = await stack({ frameTimeoutMs: 300 });
  const c = await RawClient.open(s.socket);
  await c.hello('vm-half', HELLO11);
  c.send(seaFrame(1, { timeNs: 1n }).subarray(0, 20));
  const error = await c.waitFor('error');
  assert.equal(error.code, WIRE_ERROR.BAD_FRAME);
  assert.match(error.message, /incomplete for 300 ms/);
  await c.closed;
});

test('reads that each end inside a frame, every frame completing at once, are not ended by the frame timeout', async () => {
  const { s } = await stack({ frameTimeoutMs: 300 });
  const c = await RawClient.open(s.socket);
  await c.hello('vm-straddling', HELLO11);
  // Each write ends a frame and begins the next (a plugin's partial writes under EAGAIN, or full
  // reads of back-to-back frames): no frame is ever incomplete for more than a round trip. Before,
  // the clock started at the first partial frame ran on, and the session ended after 300 ms.
  const frame = (seq: number) => seaFrame(seq, { timeNs: 1n });
  const half = frame(1).length / 2;
  c.send(frame(1).subarray(0, half));
  const started = performance.now();
  let seq = 1;
  for (; performance.now() - started < 1200; seq++) {
    c.send(Buffer.concat([frame(seq).subarray(half), frame(seq + 1).subarray(0, half)]));
    await c.waitFor('verdict', (m) => m.seq === seq);
  }
  c.send(frame(seq).subarray(half));
  await c.waitFor('verdict', (m) => m.seq === seq);
  assert.deepEqual(
    c.received.filter((m) => m.type === 'error'),
    [],
  );
  assert.ok(seq > 4, `only ${seq} frames went by`);
  c.destroy();
});

test('one session’s replay flood does not hold back another session’s replay and echo', async () => {
  const { s, durable } = await stack();
  const flooders: RawClient[] = [];
  for (let k = 0; k < 4; k++) {
    const f = await RawClient.open(s.socket);
    await f.hello(`vm-flood-${k}`, HELLO11);
    flooders.push(f);
  }
  const flood = Buffer.concat(Array.from({ length: 8000 }, (_, i) => replay(i + 1)));
  for (const f of flooders) f.send(flood);
  await until('the flood to be queued', () => s.pipeline.queuedReplays >= 16_000);
  const v = await RawClient.open(s.socket);
  await v.hello('vm-victim', HELLO11);
  v.send(Buffer.concat([replay(1), encodeMessage({ type: 'heartbeat', nonce: 42n })]));
  await v.waitFor('heartbeat');
  const flooded = [0, 1, 2, 3].reduce((n, k) => n + durable(`vm-flood-${k}`), 0);
  assert.equal(durable('vm-victim'), 1);
  // In turn, the victim waits for about one replay per flooding session; in one line, for all.
  assert.ok(flooded < 16_000, `${flooded} of 32,000 flood replays taken before the victim's one`);
  v.destroy();
  for (const f of flooders) f.destroy();
});

test('replay floods filling the bound over all sessions hold the flooders, not a VM reconnecting with its kept replays', async () => {
  const { s, durable } = await stack();
  // The VMs whose reading a replay bound stopped.
  const held = new Set<string>();
  const holdReplays = PluginSession.prototype.holdReplays;
  PluginSession.prototype.holdReplays = function (this: PluginSession, on: boolean) {
    if (on && this.info) held.add(this.info.vm.id);
    holdReplays.call(this, on);
  };
  after(() => {
    PluginSession.prototype.holdReplays = holdReplays;
  });
  const flooders: RawClient[] = [];
  for (let k = 0; k < 8; k++) {
    const f = await RawClient.open(s.socket);
    await f.hello(`vm-fill-${k}`, HELLO11);
    flooders.push(f);
  }
  const flood = Buffer.concat(Array.from({ length: MAX_REPLAY_BACKLOG + 4000 }, (_, i) => replay(i + 1)));
  for (const f of flooders) f.send(flood);
  await until(
    'the queues to reach the bound over all sessions',
    () => s.pipeline.queuedReplays >= REPLAY_SHARE_BOUND,
  );
  const flooded = () => [0, 1, 2, 3, 4, 5, 6, 7].reduce((n, k) => n + durable(`vm-fill-${k}`), 0);
  const before = flooded();
  // What a plugin keeps (vmm/plugin-client.ts), its HEARTBEAT, then a live event, in one write.
  const kept = 4096;
  const v = await RawClient.open(s.socket);
  await v.hello('vm-reconnecting', HELLO11);
  v.send(
    Buffer.concat([
      ...Array.from({ length: kept }, (_, i) => replay(i + 1)),
      encodeMessage({ type: 'heartbeat', nonce: 43n }),
      seaFrame(kept + 1, { timeNs: 1n }),
    ]),
  );
  await v.waitFor('verdict', (m) => m.seq === kept + 1);
  const during = flooded() - before;
  assert.ok(!held.has('vm-reconnecting'), `the reconnecting VM was held; held: ${[...held].join(' ')}`);
  assert.ok(held.size > 0, 'the flooders were held');
  // Held at each replay, its live event waited behind its replays for theirs: 30,598 went first.
  assert.ok(during < MAX_REPLAY_BACKLOG, `${during} flood replays taken before the live event's verdict`);
  await v.waitFor('heartbeat');
  assert.equal(durable('vm-reconnecting'), kept + 1, 'its replays and its live event stored');
  v.destroy();
  for (const f of flooders) f.destroy();
});

test("a session's replay bound holds back the replays of the read already received, and loses none", async () => {
  const { s, durable } = await stack();
  // The most replays queued at once, seen after each submit.
  let most = 0;
  const submit = s.pipeline.submit.bind(s.pipeline);
  s.pipeline.submit = (...args: Parameters<typeof submit>) => {
    submit(...args);
    most = Math.max(most, s.pipeline.queuedReplays);
  };
  const c = await RawClient.open(s.socket);
  await c.hello('vm-replays-past-the-bound', HELLO11);
  // A 56-byte MMIO first: the 64-byte replays then end off the 64 KiB boundaries of the reads,
  // so the replay that reaches the bound has ~1,000 more behind it in the same read.
  const n = MAX_REPLAY_BACKLOG + 3000;
  c.send(Buffer.concat([mmio(1), ...Array.from({ length: n }, (_, i) => replay(i + 1))]));
  c.send(encodeMessage({ type: 'heartbeat', nonce: 5n }));
  await c.waitFor('heartbeat');
  assert.equal(durable('vm-replays-past-the-bound'), n + 1, 'every replay and the event stored');
  assert.ok(most <= MAX_REPLAY_BACKLOG, `${most} replays queued at once, bound ${MAX_REPLAY_BACKLOG}`);
  assert.ok(most >= MAX_REPLAY_BACKLOG - 100, `the bound was reached (${most} queued at most)`);
  c.destroy();
});

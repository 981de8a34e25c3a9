/**
 * The verdict path in process: a policy that throws never leaves a vCPU without an answer (the
 * safe default decides, and the failure is reported), and each tick's batch reaches the durable
 * sinks before its verdicts are written.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_QUEUED_REPLAYS,
  MAX_REPLAY_BACKLOG,
  Pipeline,
  REPLAY_SHARE_BOUND,
} from '../../daemon/pipeline.js';
import type { PluginSession } from '../../daemon/session.js';
import { sessionInfo } from '../../daemon/session-info.js';
import { EventBus, type EventRecord } from '../../events/bus.js';
import type { DecisionProvider } from '../../policies/decision.js';
import {
  ACTION,
  DAEMON_ACCEPTS,
  encodeMessage,
  FrameParser,
  type Message,
  PLUGIN_ACCEPTS,
} from '../../protocol/index.js';
import { seaFrame } from '../../vmm/sample-events.js';

/** The info of a session of a VM of 2 vCPUs. */
const info = (id: bigint, vmId: string) =>
  sessionInfo(
    id,
    { type: 'hello', version: 1, caps: 0x13, vmmPid: 1, vcpuCount: 2, extAbtEsrCap: 0, vmId, labels: {} },
    { pid: 1, uid: 0, gid: 0 },
    0,
  );

function fixture(provider: DecisionProvider, order: string[]) {
  const bus = new EventBus();
  bus.add({
    name: 'durable',
    beforeReply: (batch: readonly EventRecord[]) => order.push(`stored ${batch.length}`),
  });
  const errors: unknown[] = [];
  const pipeline = new Pipeline({ policy: () => provider, bus, onDecideError: (err) => errors.push(err) });
  const written: Message[] = [];
  const holds: boolean[] = [];
  const parser = new FrameParser((m) => written.push(m), { accept: PLUGIN_ACCEPTS });
  let outbox: Buffer[] = [];
  let ord = 0;
  const session = {
    info: info(1n, 'vm'),
    nextOrd: () => ++ord,
    open: true,
    replayBacklog: 0,
    holdReplays: (on: boolean) => holds.push(on),
    queue: (frame: Buffer) => outbox.push(frame),
    flush: () => {
      order.push(`written ${outbox.length}`);
      for (const f of outbox) parser.push(f);
      outbox = [];
    },
  } as unknown as PluginSession;
  const submit = (seq: number) => {
    const frame = seaFrame(seq);
    new FrameParser((m) => pipeline.submit(session, m as never, 0n), { accept: DAEMON_ACCEPTS }).push(frame);
  };
  return { pipeline, submit, written, errors, session, holds };
}

test('a policy that throws: the safe default answers and the failure is reported', () => {
  const broken: DecisionProvider = {
    version: 'broken',
    decide: () => {
      throw new Error('policy bug');
    },
  };
  const order: string[] = [];
  const f = fixture(broken, order);
  f.submit(7);
  f.pipeline.flush();
  assert.equal(f.errors.length, 1);
  const v = f.written[0];
  assert.equal(v?.type, 'verdict');
  if (v?.type !== 'verdict') return;
  assert.equal(v.seq, 7);
  assert.equal(v.action, ACTION.INJECT);
  assert.equal(Buffer.from(v.vcpuEvents).toString('hex'), `000001${'0'.repeat(122)}`);
});

test('a tick: every event decided, stored as one batch, then written', () => {
  const order: string[] = [];
  const ok: DecisionProvider = {
    version: 'v',
    decide: () => ({ policyVersion: 'v', rule: 'r', action: 'inject', inject: { kind: 'data', via: 'kvm' } }),
  };
  const f = fixture(ok, order);
  f.submit(1);
  f.submit(2);
  f.submit(3);
  assert.equal(f.written.length, 0, 'nothing is written before the tick ends');
  f.pipeline.flush();
  assert.deepEqual(order, ['stored 3', 'written 3']);
  assert.deepEqual(
    f.written.map((m) => (m.type === 'verdict' ? m.seq : -1)),
    [1, 2, 3],
  );
});

test("heartbeat echoes behind a session's replays count toward its backlog: a stream of them stops its reading", () => {
  // 16,000 replays, then HEARTBEATs streamed: each echo waited behind the replays uncounted, and
  // the socket was read on until the daemon ran out of memory.
  const order: string[] = [];
  const f = fixture({ version: 'v', decide: () => ({ rule: 'r', action: 'inject' }) } as never, order);
  const replay = (seq: number) => {
    const frame = seaFrame(seq, { replay: true });
    new FrameParser((m) => f.pipeline.submit(f.session, m as never, 0n), { accept: DAEMON_ACCEPTS }).push(
      frame,
    );
  };
  for (let seq = 1; seq <= 100; seq++) replay(seq);
  assert.deepEqual(f.holds, []);
  const echo = encodeMessage({ type: 'heartbeat', nonce: 9n });
  for (let i = 0; i < MAX_REPLAY_BACKLOG - 100; i++) f.pipeline.afterBatch(f.session, echo);
  assert.deepEqual(f.holds, [true], 'read no more once replays and echoes reach the bound');
  assert.equal(f.session.replayBacklog, MAX_REPLAY_BACKLOG);
  f.pipeline.drain();
  assert.deepEqual(f.holds, [true, false], 'read again once they are taken');
  assert.equal(f.session.replayBacklog, 0);
  // Every replay stored (a replay gets no verdict), then every echo written.
  assert.deepEqual(order, ['stored 100', `written ${MAX_REPLAY_BACKLOG - 100}`]);
  assert.ok(f.written.every((m) => m.type === 'heartbeat'));
});

test('past the share bound the sessions over their even share are held, and the bound over all sessions holds any', () => {
  const bus = new EventBus();
  const pipeline = new Pipeline({
    policy: () => ({ version: 'v', decide: () => ({ rule: 'r', action: 'inject' }) }) as never,
    bus,
  });
  let id = 0n;
  const sessions: { session: PluginSession; held: boolean }[] = [];
  const open = () => {
    const s = { held: false } as { session: PluginSession; held: boolean };
    let ord = 0;
    s.session = {
      info: info(++id, `vm-${id}`),
      nextOrd: () => ++ord,
      open: true,
      replayBacklog: 0,
      holdReplays: (on: boolean) => {
        s.held = on;
      },
      queue: () => {},
      flush: () => {},
    } as unknown as PluginSession;
    sessions.push(s);
    return s;
  };
  let seq = 0;
  // Replays from `s` until it is held or `n` are sent; how many were sent.
  const send = (s: { session: PluginSession; held: boolean }, n: number) => {
    let sent = 0;
    for (; sent < n && !s.held; sent++) {
      const frame = seaFrame(++seq, { replay: true, timeNs: BigInt(seq) });
      new FrameParser((m) => pipeline.submit(s.session, m as never, 0n), { accept: DAEMON_ACCEPTS }).push(
        frame,
      );
    }
    return sent;
  };
  // Four sessions fill the share bound, each to its own bound.
  for (let k = 0; k < 4; k++) assert.equal(send(open(), MAX_REPLAY_BACKLOG * 2), MAX_REPLAY_BACKLOG);
  assert.equal(pipeline.queuedReplays, REPLAY_SHARE_BOUND);
  // A fifth floods: held at its even share of the share bound (five sessions), not at its first.
  assert.equal(send(open(), MAX_REPLAY_BACKLOG), Math.ceil(REPLAY_SHARE_BOUND / 5));
  // A VM with the replays a plugin keeps (vmm/plugin-client.ts) is read on.
  const kept = open();
  assert.equal(send(kept, 4096), 4096);
  assert.equal(kept.held, false);
  // Sessions that flood below a share the more of them there are: the bound over all sessions
  // holds any that sends then, a session with nothing queued too.
  while (pipeline.queuedReplays < MAX_QUEUED_REPLAYS) send(open(), MAX_REPLAY_BACKLOG);
  const late = open();
  assert.equal(send(late, 1), 1);
  assert.equal(late.held, true);
  assert.ok(pipeline.queuedReplays <= MAX_QUEUED_REPLAYS + 1, `${pipeline.queuedReplays} replays queued`);
  pipeline.drain();
  assert.equal(pipeline.queuedReplays, 0);
  assert.deepEqual(
    sessions.filter((s) => s.held).map((s) => s.session.info?.vm.id),
    [],
    'every session read again once its replays are taken',
  );
});

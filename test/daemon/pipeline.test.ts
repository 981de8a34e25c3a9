/**
 * The verdict path in process: a policy that throws never leaves a vCPU without an answer (the
 * safe default decides, and the failure is reported), and each tick's batch reaches the durable
 * sinks before its verdicts are written.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_REPLAY_BACKLOG, Pipeline } from '../../daemon/pipeline.js';
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

function fixture(provider: DecisionProvider, order: string[]) {
  const bus = new EventBus();
  bus.add({
    name: 'durable',
    beforeReply: (batch: readonly EventRecord[]) => order.push(`stored ${batch.length}`),
  });
  const errors: unknown[] = [];
  const pipeline = new Pipeline({ policy: () => provider, bus, onDecideError: (err) => errors.push(err) });
  const hello = {
    type: 'hello' as const,
    version: 1,
    caps: 0x13,
    vmmPid: 1,
    vcpuCount: 2,
    extAbtEsrCap: 0,
    vmId: 'vm',
    labels: {},
  };
  const written: Message[] = [];
  const holds: boolean[] = [];
  const parser = new FrameParser((m) => written.push(m), { accept: PLUGIN_ACCEPTS });
  let outbox: Buffer[] = [];
  let ord = 0;
  const session = {
    info: sessionInfo(1n, hello, { pid: 1, uid: 0, gid: 0 }, 0),
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

/**
 * A session handles at most FRAMES_PER_TURN frames before the event loop takes a turn
 * (daemon/session.ts): one peer's burst — APPLIED results, which need no verdict and so meet no
 * other bound, or events — cannot keep every other session waiting until all of it is handled.
 * The sessions here run over stand-in sockets that deliver reads as libuv does (up to 32 of
 * 64 KiB for one readable socket, then the next socket's), so what was handled when the other
 * VM's event arrived is counted exactly, never timed; and the burst is handled whole and in order,
 * with no more bytes arriving to wake the session. On real sockets (the in-process daemon core),
 * a burst written at once is handled whole and the other VM is answered meanwhile.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { FRAMES_PER_TURN, PluginSession, type SessionHost } from '../../daemon/session.js';
import type { SessionInfo } from '../../events/index.js';
import { CAP, encodeMessage, PROTOCOL_VERSION } from '../../protocol/index.js';
import { seaFrame } from '../../vmm/sample-events.js';
import { INJECT, provider, startStack } from '../attach/stack.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from '../helpers/wait.js';

/** The socket side a session uses: reads are delivered while it is not paused, kept while it is. */
class StandInSocket extends EventEmitter {
  paused = false;
  readonly unread: Buffer[] = [];
  readonly destroyed = false;
  readonly writableLength = 0;

  /** One read of the kernel's socket buffer. */
  read(chunk: Buffer): void {
    if (this.paused) this.unread.push(chunk);
    else this.emit('data', chunk);
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  /** As a stream does: what was read while paused is delivered on a later tick. */
  resume(): this {
    this.paused = false;
    process.nextTick(() => {
      while (!this.paused && this.unread.length > 0) this.emit('data', this.unread.shift());
    });
    return this;
  }

  write(): boolean {
    return true;
  }

  end(): void {}
  destroy(): void {}
}

/** A 1.0 HELLO of one vCPU; each session gives its VM id. */
const CAPS = CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS;
const HELLO = {
  type: 'hello',
  version: PROTOCOL_VERSION,
  caps: CAPS,
  vmmPid: process.pid,
  vcpuCount: 1,
} as const;

/** What the sessions handed over, in order, and what the flood had handed over when the VM's event came. */
function harness() {
  const handled: string[] = [];
  const appliedByVm = new Map<string, number>();
  let floodAppliedAtVictimEvent = -1;
  let ids = 0n;
  const vmOf = (s: PluginSession) => (s.info as SessionInfo).vm.id;
  const host: SessionHost = {
    admit: (_s, hello) =>
      ({
        id: ++ids,
        minor: hello.minor ?? 0,
        vm: { id: hello.vmId },
        vcpuCount: 1,
      }) as unknown as SessionInfo,
    submit: (s, msg) => {
      if (vmOf(s) === 'vm-victim') floodAppliedAtVictimEvent = appliedByVm.get('vm-flood') ?? 0;
      else handled.push(`event ${msg.seq}`);
    },
    applied: (s, msg) => {
      appliedByVm.set(vmOf(s), (appliedByVm.get(vmOf(s)) ?? 0) + 1);
      handled.push(`applied ${msg.seq}`);
    },
    echo: () => handled.push('heartbeat'),
    closing: () => {},
    protocolError: (_s, err) => {
      throw err;
    },
    closed: () => {},
    maxBody: 16 * 1024,
    writeHighWater: 1 << 20,
    maxInFlight: 1 << 20,
    helloTimeoutMs: 60_000,
    frameTimeoutMs: 60_000,
  };
  const open = (vmId: string) => {
    const socket = new StandInSocket();
    const session = new PluginSession(socket as unknown as Socket, host, { pid: 1, uid: 0, gid: 0 });
    socket.read(encodeMessage({ ...HELLO, extAbtEsrCap: 0, labels: {}, vmId }));
    assert.equal(session.state, 'active');
    return { socket, session };
  };
  return { handled, open, victimSaw: () => floodAppliedAtVictimEvent };
}

/** 131,072 frames: APPLIED results, with an event every 4,096th and a HEARTBEAT last; and the order expected. */
function burst(): { bytes: Buffer; expected: string[] } {
  const frames: Buffer[] = [];
  const expected: string[] = [];
  for (let seq = 1; seq < 131_072; seq++) {
    if (seq % 4096 === 0) {
      frames.push(seaFrame(seq));
      expected.push(`event ${seq}`);
    } else {
      frames.push(encodeMessage({ type: 'applied', seq, result: 0 }));
      expected.push(`applied ${seq}`);
    }
  }
  frames.push(encodeMessage({ type: 'heartbeat', nonce: 7n }));
  expected.push('heartbeat');
  return { bytes: Buffer.concat(frames), expected };
}

for (const [name, reads] of [
  ['32 reads of 64 KiB, as one readable event of libuv', 32],
  ['one read', 1],
] as const) {
  test(`another VM's event is handled after at most ${FRAMES_PER_TURN} frames of a burst in ${name}, and the burst whole, in order`, async (t) => {
    const h = harness();
    const flood = h.open('vm-flood');
    const victim = h.open('vm-victim');
    t.after(() => {
      flood.socket.emit('close');
      victim.socket.emit('close');
    });
    const { bytes, expected } = burst();
    // One turn's reads: the flooding socket's, then the other VM's.
    const size = Math.ceil(bytes.length / reads);
    for (let o = 0; o < bytes.length; o += size) flood.socket.read(bytes.subarray(o, o + size));
    victim.socket.read(seaFrame(1));
    assert.ok(h.victimSaw() >= 0, "the VM's event was handled in the turn its bytes were read");
    assert.ok(
      h.victimSaw() <= FRAMES_PER_TURN,
      `the flood had ${h.victimSaw()} APPLIED results handled before the VM's event`,
    );
    // No more bytes come: the flood is handled over the following turns, all of it, in order.
    await until(
      'the whole burst to be handled',
      () => h.handled.length === expected.length && h.handled[h.handled.length - 1] === 'heartbeat',
      { state: () => `${h.handled.length} of ${expected.length} frames handled` },
    );
    assert.deepEqual(h.handled, expected);
    assert.equal(flood.session.held, false, 'reading again once the burst is handled');
    assert.equal(flood.socket.paused, false);
  });
}

test('on real sockets: a burst of 200,000 APPLIED results is handled whole while another VM is answered', async (t) => {
  const s = await startStack(provider(() => INJECT));
  t.after(() => s.close());
  let applied = 0;
  s.bus.add({ name: 'applied', applied: () => applied++ });
  const flood = await RawClient.open(s.socket);
  t.after(() => flood.destroy());
  await flood.hello('vm-flood');
  const victim = await RawClient.open(s.socket);
  t.after(() => victim.destroy());
  await victim.hello('vm-victim');
  const frames = Array.from({ length: 200_000 }, (_, i) =>
    encodeMessage({ type: 'applied', seq: i + 1, result: 0 }),
  );
  flood.send(Buffer.concat([...frames, encodeMessage({ type: 'heartbeat', nonce: 9n })]));
  victim.send(seaFrame(1));
  await victim.waitFor('verdict', (m) => m.seq === 1);
  const atVerdict = applied;
  await flood.waitFor('heartbeat', (m) => m.nonce === 9n);
  // The echo acknowledges every frame before it: all were handled.
  assert.equal(applied, 200_000);
  assert.ok(atVerdict < 200_000, `the VM's verdict came once ${atVerdict} APPLIED results were handled`);
});

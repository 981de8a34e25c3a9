import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import {
  ACTION,
  BODY_SIZE,
  DAEMON_ACCEPTS,
  encodeMessage,
  FrameParser,
  HEADER_SIZE,
  isProtocolError,
  LIMITS,
  type Message,
  MSG,
  PLUGIN_ACCEPTS,
} from '../../protocol/index.js';
import { seaEvent } from '../../vmm/sample-events.js';

const ALL = new Set([...DAEMON_ACCEPTS, ...PLUGIN_ACCEPTS, MSG.HELLO]);

function parseAll(bytes: Buffer, chunk = bytes.length, accept: ReadonlySet<number> = ALL): Message[] {
  const out: Message[] = [];
  const p = new FrameParser((m) => out.push(m), { accept });
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk));
  assert.equal(p.idle, true);
  return out;
}

const SAMPLES: Message[] = [
  {
    type: 'hello',
    version: 1,
    minor: 0,
    caps: 0x13,
    vmmPid: 4242,
    vcpuCount: 8,
    extAbtEsrCap: 0,
    vmId: 'vm-ü-1',
    labels: { tenant: 'acme', tier: 'gold' },
  },
  { type: 'welcome', version: 1, minor: 0, maxInFlight: 1024, sessionId: 7n, heartbeatMs: 5000, maxBody: 0 },
  { type: 'reject', code: 8, message: 'VM id in use' },
  seaEvent(1, { vcpu: 3, timeNs: 1_700_000_000_000_000_000n, gpa: 0x8000_0000n }),
  {
    type: 'nisv',
    seq: 2,
    vcpu: 0,
    timeNs: 1n,
    replay: true,
    fallbackAction: 1,
    esrIss: 0n,
    faultIpa: 0x8000000n,
  },
  {
    type: 'mmio',
    seq: 3,
    vcpu: 1,
    timeNs: 2n,
    replay: false,
    fallbackAction: 0,
    physAddr: 0x8000000n,
    data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    len: 8,
    isWrite: true,
  },
  {
    type: 'sigbus',
    seq: 4,
    vcpu: null,
    timeNs: 3n,
    replay: false,
    fallbackAction: 0,
    siCode: 5,
    addrLsb: 12,
    gpa: null,
  },
  {
    type: 'verdict',
    seq: 1,
    action: ACTION.INJECT,
    flags: 0,
    graceMs: 0,
    esr: 0n,
    vcpuEvents: Uint8Array.from({ length: 64 }, (_, i) => (i === 2 ? 1 : 0)),
  },
  { type: 'applied', seq: 1, result: -22 },
  { type: 'heartbeat', nonce: 99n },
  { type: 'error', code: 2, message: 'too big' },
  { type: 'goodbye', reason: 1 },
];

test('every message round-trips, whole and byte by byte', () => {
  for (const m of SAMPLES) {
    const bytes = encodeMessage(m);
    assert.deepEqual(parseAll(bytes), [m], m.type);
    assert.deepEqual(parseAll(bytes, 1), [m], `${m.type} byte by byte`);
  }
});

test('fixed-size bodies have the documented sizes', () => {
  const size = (m: Message) => encodeMessage(m).length - HEADER_SIZE;
  assert.equal(size(SAMPLES[3] as Message), BODY_SIZE.EVENT_SEA);
  assert.equal(size(SAMPLES[4] as Message), BODY_SIZE.EVENT_NISV);
  assert.equal(size(SAMPLES[5] as Message), BODY_SIZE.EVENT_MMIO);
  assert.equal(size(SAMPLES[6] as Message), BODY_SIZE.EVENT_SIGBUS);
  assert.equal(size(SAMPLES[7] as Message), BODY_SIZE.VERDICT);
});

test('property: any chunking of any sequence of frames yields the same messages', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: SAMPLES.length - 1 }), { minLength: 1, maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 50 }),
      (picks, cuts) => {
        const msgs = picks.map((i) => SAMPLES[i] as Message);
        const bytes = Buffer.concat(msgs.map(encodeMessage));
        const out: Message[] = [];
        const p = new FrameParser((m) => out.push(m), { accept: ALL });
        let o = 0;
        for (let i = 0; o < bytes.length; i++) {
          const n = cuts[i % cuts.length] as number;
          p.push(bytes.subarray(o, o + n));
          o += n;
        }
        assert.deepEqual(out, msgs);
      },
    ),
    { numRuns: 300 },
  );
});

function header(length: number, type: number, reserved = 0): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(reserved, 6);
  return h;
}

function rejects(bytes: Buffer, code: string, accept = DAEMON_ACCEPTS): FrameParser {
  const p = new FrameParser(() => {}, { accept });
  assert.throws(
    () => p.push(bytes),
    (e) => isProtocolError(e) && e.code === code,
  );
  return p;
}

test('an oversized length is refused from the header alone, before any body is buffered', () => {
  const p = rejects(header(LIMITS.maxBody + 1, MSG.HELLO), 'SEAWALL_PROTO_OVERSIZE');
  assert.equal(p.buffered, 0);
  rejects(header(0xffffffff, MSG.EVENT_SEA), 'SEAWALL_PROTO_OVERSIZE');
});

test('unknown types, wrong directions, wrong fixed sizes and nonzero reserved bits are refused', () => {
  rejects(header(8, 0x7f), 'SEAWALL_PROTO_UNKNOWN_TYPE');
  rejects(header(BODY_SIZE.VERDICT, MSG.VERDICT), 'SEAWALL_PROTO_UNEXPECTED_TYPE');
  rejects(header(BODY_SIZE.EVENT_SEA - 1, MSG.EVENT_SEA), 'SEAWALL_PROTO_BAD_FRAME');
  rejects(header(BODY_SIZE.EVENT_SEA, MSG.EVENT_SEA, 1), 'SEAWALL_PROTO_BAD_FRAME');
});

test('HELLO field checks: empty id, bad UTF-8, trailing bytes, duplicate labels', () => {
  const good = encodeMessage(SAMPLES[0] as Message);
  const trailing = Buffer.concat([good, Buffer.from([0])]);
  trailing.writeUInt32LE(good.length - HEADER_SIZE + 1, 0);
  rejects(trailing, 'SEAWALL_PROTO_BAD_FRAME');
  const badUtf8 = Buffer.from(good);
  badUtf8[HEADER_SIZE + 24] = 0xff;
  rejects(badUtf8, 'SEAWALL_PROTO_BAD_FIELD');
  assert.throws(
    () => encodeMessage({ ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>), vmId: '' }),
    (e) => isProtocolError(e) && e.code === 'SEAWALL_PROTO_BAD_FIELD',
  );
  const dup = encodeMessage({
    ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>),
    labels: { a: '1', b: '2' },
  });
  const at = dup.indexOf(Buffer.from('b'), HEADER_SIZE + 24 + 'vm-ü-1'.length + 5);
  dup[at] = 'a'.charCodeAt(0);
  rejects(dup, 'SEAWALL_PROTO_BAD_FIELD');
});

test('a leading byte order mark is part of the string, never dropped', () => {
  // A decoder that strips EF BB BF would turn a vm_id of only a BOM into "" (past the 1..128
  // byte check) and make "\uFEFFvm-7" the same id as "vm-7".
  const hello = { ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>) };
  for (const vmId of ['\uFEFF', '\uFEFFvm-7', '\uFEFF\uFEFFvm-7']) {
    const sent: Message = { ...hello, vmId, labels: { '\uFEFF': '\uFEFFx', '\uFEFFtenant': 'a' } };
    assert.deepEqual(parseAll(encodeMessage(sent)), [sent]);
  }
  const error: Message = { type: 'error', code: 6, message: '\uFEFFbad' };
  assert.deepEqual(parseAll(encodeMessage(error)), [error]);
});

test('a dead parser stays dead: after a violation nothing more is accepted', () => {
  const p = rejects(header(8, 0x7f), 'SEAWALL_PROTO_UNKNOWN_TYPE');
  assert.throws(
    () => p.push(encodeMessage(SAMPLES[9] as Message)),
    (e) => isProtocolError(e),
  );
});

test('stop() ends delivery at the frame boundary; resume() parses what waited, in order', () => {
  const frames = [1, 2, 3, 4, 5].map((seq) => encodeMessage({ type: 'heartbeat', nonce: BigInt(seq) }));
  const seen: bigint[] = [];
  const p = new FrameParser(
    (m) => {
      if (m.type !== 'heartbeat') return;
      seen.push(m.nonce);
      if (m.nonce === 2n || m.nonce === 4n) p.stop();
    },
    { accept: ALL },
  );
  // One chunk of three frames and a half, then the rest while stopped.
  const all = Buffer.concat(frames);
  const size = all.length / frames.length;
  const cut = size * 3 + 5;
  p.push(all.subarray(0, cut));
  assert.deepEqual(seen, [1n, 2n]);
  assert.equal(p.stopped, true);
  p.push(all.subarray(cut));
  assert.deepEqual(seen, [1n, 2n], 'nothing delivered while stopped');
  assert.equal(p.waiting, all.length - size * 2);
  p.resume();
  assert.deepEqual(seen, [1n, 2n, 3n, 4n], 'stopped again at the fourth');
  p.resume();
  assert.deepEqual(seen, [1n, 2n, 3n, 4n, 5n]);
  assert.equal(p.waiting, 0);
  assert.equal(p.idle, true);
});

test('property: arbitrary bytes either parse or raise a ProtocolError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const p = new FrameParser(() => {}, { accept: ALL });
      try {
        p.push(Buffer.from(bytes));
      } catch (e) {
        assert.ok(isProtocolError(e), String(e));
      }
      assert.ok(p.buffered <= HEADER_SIZE + LIMITS.maxBody);
    }),
    { numRuns: 3000 },
  );
});

test('reserved bytes, unknown capability bits and a stray fallback_action are refused', () => {
  const sea = encodeMessage(SAMPLES[3] as Message);
  for (const offset of [19, 20, 23]) {
    const bad = Buffer.from(sea);
    bad[HEADER_SIZE + offset] = 1;
    rejects(bad, 'SEAWALL_PROTO_BAD_FIELD');
  }
  const stray = Buffer.from(sea);
  stray[HEADER_SIZE + 18] = 1; // fallback_action without the REPLAY flag
  rejects(stray, 'SEAWALL_PROTO_BAD_FIELD');
  const hello = encodeMessage({ ...(SAMPLES[0] as Extract<Message, { type: 'hello' }>), caps: 1 << 20 });
  rejects(hello, 'SEAWALL_PROTO_BAD_FIELD');
});

test('ERROR text is cut to the limit at a character boundary, and the peer accepts it', () => {
  const message = 'é'.repeat(LIMITS.messageTextMax); // 2 bytes each: the limit falls mid-character
  const [m] = parseAll(encodeMessage({ type: 'error', code: 13, message }), 7, PLUGIN_ACCEPTS);
  assert.equal(m?.type, 'error');
  const text = (m as Extract<Message, { type: 'error' }>).message;
  assert.ok(Buffer.byteLength(text) <= LIMITS.messageTextMax);
  assert.equal(text, 'é'.repeat(LIMITS.messageTextMax / 2));
});

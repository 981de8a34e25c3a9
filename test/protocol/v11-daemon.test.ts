/**
 * Protocol 1.1 against a running daemon, one point of docs/protocol.md §10.1 per test, each on its
 * own connection: version negotiation, WELCOME's limits, the field checks 1.0 lacked (refused in a
 * 1.1 session, still accepted in a 1.0 one where 1.0 allowed them), the HEARTBEAT echo, REJECT
 * texts, the emulated abort after a SIGBUS, FnV, and a late verdict reported by APPLIED.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigSchema } from '../../daemon/config.js';
import {
  ACTION,
  APPLIED_SOURCE,
  CAP,
  type EventMsg,
  encodeMessage,
  HEADER_SIZE,
  type HelloMsg,
  LIMITS,
  type Message,
  MSG,
  WIRE_ERROR,
} from '../../protocol/index.js';
import { vector } from '../../scripts/protocol-vectors.js';
import { runCli } from '../daemon/e2e/run-cli.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';

const POLICY = `version: 1
name: v11
rules:
  - name: sigbus-inject
    match: { kind: sigbus }
    action: { type: inject, abort: data }
default:
  action: { type: inject, abort: data }
`;
const SEA_ESR = 0x92000010n;
const NOW = 1_767_225_600_000_000_000n;
let d: RunningDaemon;
const clients: RawClient[] = [];
let vmCounter = 0;

before(async () => {
  d = await startDaemon({ metrics: false });
  const policy = join(d.dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  await d.stop();
  d = await startDaemon({ metrics: false, dir: d.dir, args: ['--policy', policy] });
});

after(async () => {
  for (const c of clients) c.destroy();
  await d.stop();
  removeDir(d.dir);
});

async function open(minor: number, extra: Partial<HelloMsg> = {}): Promise<RawClient> {
  const c = await RawClient.open(d.socket);
  clients.push(c);
  await c.hello(`v11-${vmCounter++}`, { minor, ...extra });
  return c;
}

function sea(seq: number, extra: Partial<EventMsg> = {}): Message {
  return {
    type: 'sea',
    seq,
    vcpu: 0,
    timeNs: NOW,
    replay: false,
    fallbackAction: 0,
    kvmFlags: 1n,
    esr: SEA_ESR,
    gva: 0x1000n,
    gpa: 0x2000n,
    ...extra,
  } as Message;
}
const mmio = (seq: number, len: number): Message => ({
  type: 'mmio',
  seq,
  vcpu: 0,
  timeNs: NOW,
  replay: false,
  fallbackAction: 0,
  physAddr: 0x9000000n,
  data: new Uint8Array(8),
  len,
  isWrite: false,
});
const sigbus = (seq: number, siCode: number, vcpu: number | null): Message => ({
  type: 'sigbus',
  seq,
  vcpu,
  timeNs: NOW,
  replay: false,
  fallbackAction: 0,
  siCode,
  addrLsb: 12,
  gpa: 0x3000n,
});
const nisv = (seq: number): Message => ({
  type: 'nisv',
  seq,
  vcpu: 0,
  timeNs: NOW,
  replay: false,
  fallbackAction: 0,
  esrIss: 0n,
  faultIpa: 0x8000000n,
});

async function refusedWith(c: RawClient, code: number): Promise<string> {
  const e = await c.waitFor('error');
  assert.equal(e.code, code, e.message);
  await c.closed;
  return e.message;
}

test('a version-2 HELLO of any layout, and a 1.2 one, get REJECT VERSION naming 1.1', async () => {
  const v2 = await RawClient.open(d.socket);
  clients.push(v2);
  const frame = Buffer.alloc(HEADER_SIZE + 4);
  frame.writeUInt32LE(4, 0);
  frame.writeUInt16LE(MSG.HELLO, 4);
  frame.writeUInt16LE(2, HEADER_SIZE); // version 2, and nothing of 1.x's layout after it
  v2.send(frame);
  const r = await v2.waitFor('reject');
  assert.equal(r.code, WIRE_ERROR.VERSION);
  assert.deepEqual(r.supported, { major: 1, minor: 1 });
  const v12 = await RawClient.open(d.socket);
  clients.push(v12);
  v12.send({ ...(vector('hello').message as HelloMsg), minor: 2, vmId: 'v11-minor-2' });
  assert.deepEqual((await v12.waitFor('reject')).supported, { major: 1, minor: 1 });
});

test('WELCOME answers the version asked for; max_body is there in 1.1 and 0 in 1.0', async () => {
  const c11 = await open(1);
  const w11 = await c11.waitFor('welcome');
  assert.deepEqual([w11.version, w11.minor, w11.maxBody], [1, 1, LIMITS.maxBody]);
  const c10 = await open(0);
  const w10 = await c10.waitFor('welcome');
  assert.deepEqual([w10.version, w10.minor, w10.maxBody], [1, 0, 0]);
});

test('maxBody cannot be set below the largest valid HELLO', () => {
  const low = ConfigSchema.safeParse({ limits: { maxBody: 1024 } });
  assert.equal(low.success, false);
  assert.equal(ConfigSchema.safeParse({ limits: { maxBody: LIMITS.largestHello } }).success, true);
  assert.equal(LIMITS.largestHello, 10_456);
});

/** Each case: what a 1.1 session refuses with BAD_FIELD, and whether a 1.0 session still accepts it. */
const EVENT_CASES: [string, Message | Buffer, boolean][] = [
  ['seq 0', sea(0), true],
  ['time_ns 0', sea(3, { timeNs: 0n }), true],
  ['MMIO len 3', mmio(4, 3), true],
  ['MMIO len 0', mmio(5, 0), true],
  ['BUS_MCEERR_AR without a vCPU', sigbus(6, 4, null), true],
  ['BUS_MCEERR_AO with a vCPU', sigbus(7, 5, 0), true],
  ['a SEA whose ESR is not an abort (EC 0x15, SVC)', sea(8, { esr: (0x15n << 26n) | (1n << 25n) }), true],
  ['NISV without NISV_TO_USER declared', nisv(9), true],
  ['a REPLAY whose fallback_action is no ACTION code', sea(10, { replay: true, fallbackAction: 7 }), false],
  [
    'MMIO is_write 2',
    (() => {
      const b = encodeMessage(mmio(11, 4));
      b[HEADER_SIZE + 44] = 2;
      return b;
    })(),
    false,
  ],
  [
    'two unanswered events with one seq',
    Buffer.concat([encodeMessage(sea(12)), encodeMessage(sea(12))]),
    false,
  ],
];

for (const [name, frames, acceptedIn10] of EVENT_CASES) {
  test(`1.1 refuses ${name} (BAD_FIELD)${acceptedIn10 ? '; a 1.0 session still gets an answer' : ', in 1.0 too'}`, async () => {
    const c11 = await open(1);
    c11.send(frames);
    await refusedWith(c11, WIRE_ERROR.BAD_FIELD);
    const c10 = await open(0);
    c10.send(frames);
    if (acceptedIn10) {
      const first = Buffer.isBuffer(frames) ? null : frames;
      if (first && 'replay' in first && !first.replay)
        await c10.waitFor('verdict', (v) => v.seq === first.seq);
      else {
        c10.send({ type: 'heartbeat', nonce: 1n });
        await c10.waitFor('heartbeat');
      }
      assert.equal(
        c10.received.some((m) => m.type === 'error'),
        false,
      );
    } else {
      await refusedWith(c10, WIRE_ERROR.BAD_FIELD);
    }
  });
}

test('1.1 refuses a SEA without SEA_TO_USER declared', async () => {
  const c = await open(1, { caps: CAP.INJECT_EXT_DABT | CAP.RAS });
  c.send(sea(1));
  assert.match(await refusedWith(c, WIRE_ERROR.BAD_FIELD), /SEA_TO_USER/);
});

for (const [name, extra] of [
  ['ext_abt_esr_cap without EXT_ABT_ESR', { extAbtEsrCap: 245 }],
  ['EXT_ABT_ESR with ext_abt_esr_cap 0', { caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.EXT_ABT_ESR }],
  ['vmm_pid 0', { vmmPid: 0 }],
] as const) {
  test(`a 1.1 HELLO with ${name} is refused (BAD_FIELD); a 1.0 one is admitted`, async () => {
    const c = await RawClient.open(d.socket);
    clients.push(c);
    c.send({ ...(vector('hello').message as HelloMsg), vmId: `v11-hello-${vmCounter++}`, ...extra });
    await refusedWith(c, WIRE_ERROR.BAD_FIELD);
    await open(0, extra);
  });
}

test('vmm_pid 1 is admitted: a VMM alone in its PID namespace is pid 1 there', async () => {
  await open(1, { vmmPid: 1 });
});

test('REJECT VM_IN_USE says the id is held, not by which process', async () => {
  const holder = await open(1);
  const id = `v11-${vmCounter - 1}`;
  const second = await RawClient.open(d.socket);
  clients.push(second);
  second.send({ ...(vector('hello').message as HelloMsg), vmId: id });
  const r = await second.waitFor('reject');
  assert.equal(r.code, WIRE_ERROR.VM_IN_USE);
  assert.doesNotMatch(r.message, /pid|\d{3,}/);
  assert.equal(holder.socket.destroyed, false);
});

test('the HEARTBEAT echo comes after the verdicts of every event sent before it', async () => {
  const c = await open(1);
  c.send(
    Buffer.concat([
      encodeMessage(sea(1)),
      encodeMessage(sea(2)),
      encodeMessage({ type: 'heartbeat', nonce: 77n }),
    ]),
  );
  await c.waitFor('heartbeat');
  assert.deepEqual(
    c.received.slice(1).map((m) => (m.type === 'verdict' ? `v${m.seq}` : m.type)),
    ['v1', 'v2', 'heartbeat'],
  );
});

test('after a SIGBUS on an emulating host the daemon answers with the §11 INJECT_EMULATED dump, in 1.1 and 1.0', async () => {
  for (const minor of [1, 0]) {
    const c = await open(minor, {
      caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.EMULATE_ABORT,
    });
    c.send(sigbus(10, 4, 0));
    const v = await c.waitFor('verdict');
    assert.deepEqual(encodeMessage(v), encodeMessage(vector('verdict-emulated').message), `1.${minor}`);
  }
});

test('an emulated abort has FnV set unless the exit gave a guest VA; a host without INJECT_EXT_DABT emulates too', async () => {
  const c = await open(1, { caps: CAP.SEA_TO_USER | CAP.NISV_TO_USER | CAP.EMULATE_ABORT });
  c.send(sea(1));
  c.send(nisv(2));
  c.send(sea(3, { esr: SEA_ESR | (1n << 10n) })); // the exit's own ESR has FnV: gva is not valid
  const got = [];
  for (const seq of [1, 2, 3]) got.push(await c.waitFor('verdict', (v) => v.seq === seq));
  assert.deepEqual(
    got.map((v) => [v.action, `0x${v.esr.toString(16)}`]),
    [
      [ACTION.INJECT_EMULATED, '0x92000010'],
      [ACTION.INJECT_EMULATED, '0x92000410'],
      [ACTION.INJECT_EMULATED, '0x92000410'],
    ],
  );
});

test('a late verdict reported by APPLIED FALLBACK: the record shows what the guest got', async () => {
  const c = await open(1);
  const vm = `v11-${vmCounter - 1}`;
  c.send(sea(1));
  await c.waitFor('verdict');
  c.send({
    type: 'applied',
    seq: 1,
    result: 0,
    applied: { action: ACTION.RESUME, source: APPLIED_SOURCE.FALLBACK },
  });
  c.send({ type: 'heartbeat', nonce: 9n });
  await c.waitFor('heartbeat');
  const r = await runCli(['events', '--vm', vm, '--json', '--control-socket', d.controlSocket]);
  assert.equal(r.code, 0, r.stderr);
  const [e] = JSON.parse(r.stdout) as { verdictAction: number; fallbackAction: number; applied: number }[];
  assert.deepEqual([e?.verdictAction, e?.fallbackAction, e?.applied], [ACTION.INJECT, ACTION.RESUME, 0]);
  const table = await runCli(['events', '--vm', vm, '--control-socket', d.controlSocket]);
  assert.match(table.stdout, /superseded by fallback resume, applied/);
});

test('a 1.0 session accepts only the 8-byte APPLIED', async () => {
  const c = await open(0);
  c.send({
    type: 'applied',
    seq: 1,
    result: 0,
    applied: { action: ACTION.RESUME, source: APPLIED_SOURCE.FALLBACK },
  });
  await refusedWith(c, WIRE_ERROR.BAD_FRAME);
});

/**
 * Hostile input against a running daemon, each case on its own connection, while a well-behaved
 * VM keeps asking for verdicts on another. Each case gets its documented outcome
 * (docs/protocol.md "Errors"); the good VM never sees a wrong verdict or a fallback; the daemon
 * stays up and its memory stays bounded.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, test } from 'node:test';
import { ACTION, HEADER_SIZE, MSG, WIRE_ERROR } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { seaFrame as sampleFrame, seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { nextEvent, within } from '../helpers/wait.js';

const IMAGE = `000001${'0'.repeat(122)}`;
const seaFrame = (seq: number, vcpu = 0) => sampleFrame(seq, { vcpu });

let d: RunningDaemon;
let good: PluginClient;
let goodLoop: Promise<void>;
let stopGood = false;
const goodStats = { verdicts: 0, wrong: 0, fallbacks: 0 };
/** Emits 'verdict' with the good VM's count after each correct verdict. */
const goodVerdicts = new EventEmitter();

before(async () => {
  d = await startDaemon({ metrics: false });
  good = new PluginClient({
    socket: d.socket,
    vmId: 'good-vm',
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    // Being served at all while the others misbehave is the point, not how fast.
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await good.connect();
  goodLoop = (async () => {
    while (!stopGood) {
      const out = await good.handleExit(seaExit({ gpa: 0x2000n }));
      if (out.source !== 'daemon') goodStats.fallbacks++;
      else if (
        out.verdict.action !== ACTION.INJECT ||
        Buffer.from(out.verdict.vcpuEvents).toString('hex') !== IMAGE
      )
        goodStats.wrong++;
      else goodVerdicts.emit('verdict', ++goodStats.verdicts);
      await new Promise((r) => setImmediate(r));
    }
  })();
});

after(async () => {
  stopGood = true;
  await within('the good VM to stop', goodLoop);
  await good.close();
  await d.kill();
  removeDir(d.dir);
});

/** The good VM gets 20 more correct verdicts from here (proof it is not starved). */
async function goodProgresses(): Promise<void> {
  const target = goodStats.verdicts + 20;
  await nextEvent<[number]>(goodVerdicts, 'verdict', `verdict ${target} of the good VM`, (n) => n >= target, {
    state: () => `good VM: ${JSON.stringify(goodStats)}`,
  });
}

function header(length: number, type: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(length, 0);
  h.writeUInt16LE(type, 4);
  return h;
}

test('garbage bytes: ERROR, connection closed', async () => {
  const c = await RawClient.open(d.socket);
  c.send(Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
  const e = await c.waitFor('error');
  assert.ok(
    [WIRE_ERROR.UNKNOWN_TYPE, WIRE_ERROR.BAD_FRAME, WIRE_ERROR.OVERSIZE].includes(e.code as 1 | 2 | 3),
  );
  await c.closed;
  await goodProgresses();
});

test('an oversized length: ERROR OVERSIZE from the header alone', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('oversize-vm');
  c.send(header(1 << 30, MSG.EVENT_SEA));
  const e = await c.waitFor('error');
  assert.equal(e.code, WIRE_ERROR.OVERSIZE);
  await c.closed;
  await goodProgresses();
});

test('an unknown type: ERROR UNKNOWN_TYPE', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('unknown-type-vm');
  c.send(header(8, 0x7e));
  assert.equal((await c.waitFor('error')).code, WIRE_ERROR.UNKNOWN_TYPE);
  await c.closed;
});

test('an event before HELLO: ERROR NOT_HELLO_FIRST', async () => {
  const c = await RawClient.open(d.socket);
  c.send(seaFrame(1));
  assert.equal((await c.waitFor('error')).code, WIRE_ERROR.NOT_HELLO_FIRST);
  await c.closed;
});

test('a HELLO for a VM id held by a live session: REJECT VM_IN_USE, the holder unaffected', async () => {
  const c = await RawClient.open(d.socket);
  c.send({
    type: 'hello',
    version: 1,
    caps: DEFAULT_CAPS,
    vmmPid: 1,
    vcpuCount: 1,
    extAbtEsrCap: 0,
    vmId: 'good-vm',
    labels: {},
  });
  const r = await c.waitFor('reject');
  assert.equal(r.code, WIRE_ERROR.VM_IN_USE);
  await c.closed;
  await goodProgresses();
  assert.equal(good.connected, true);
});

test('a truncated frame: held until the peer goes, then the session ends with no verdict', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('truncated-vm');
  c.send(seaFrame(1).subarray(0, 20));
  c.socket.end();
  await c.closed;
  assert.deepEqual(
    c.received.map((m) => m.type),
    ['welcome'],
  );
  await goodProgresses();
});

test('a peer that disconnects mid-frame changes nothing for others', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('midframe-vm');
  const f = seaFrame(1);
  c.send(f.subarray(0, HEADER_SIZE + 10));
  c.destroy();
  await c.closed;
  await goodProgresses();
  // The VM id is free again once the session is gone.
  const again = await RawClient.open(d.socket);
  await again.hello('midframe-vm');
  again.destroy();
});

test('10,000 events without reading replies: reading is paused, memory stays bounded, nothing is lost', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('flood-vm');
  c.socket.pause();
  const rssBefore = d.rssKiB();
  const all = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => seaFrame(i + 1, i % 4)));
  c.socket.write(all);
  // Let the daemon run into its bound while the good VM keeps being served.
  for (let i = 0; i < 5; i++) await goodProgresses();
  const grownKiB = d.rssKiB() - rssBefore;
  assert.ok(grownKiB < 64 * 1024, `daemon RSS grew by ${grownKiB} KiB`);
  // Now read: every one of the 10,000 events gets its verdict, in order.
  c.socket.resume();
  await c.waitFor('verdict', (v) => v.seq === 10_000);
  assert.equal(c.received.filter((m) => m.type === 'verdict').length, 10_000);
  const seqs = c.received.filter((m) => m.type === 'verdict').map((m) => (m as { seq: number }).seq);
  assert.deepEqual(seqs.slice(0, 3), [1, 2, 3]);
  assert.equal(seqs[9999], 10_000);
  c.destroy();
});

test('throughout: the good VM got only correct verdicts and the daemon is still up', async () => {
  await goodProgresses();
  assert.ok(goodStats.verdicts > 100, `good VM verdicts: ${goodStats.verdicts}`);
  assert.equal(goodStats.wrong, 0);
  assert.equal(goodStats.fallbacks, 0);
  assert.equal(d.proc.exitCode, null);
});

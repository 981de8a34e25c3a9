/**
 * Issue 12, items 5, 8 and 11: VM ids are bytes a peer chose. Ids with a newline, ESC, a C1 CSI,
 * a bidi override or a forged ` SEAWALL_VM=` field: every VM's count in /metrics stays exact, no
 * stderr log line carries a raw control character or a forged field, and `printable` (what the
 * CLI shows) escapes them all. A seq reused after its verdict is a new event with its own row.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { printable } from '../../events/index.js';
import { seaFrame } from '../../vmm/sample-events.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';

const HOSTILE = [
  'nl\nSEAWALL_VM=victim',
  'esc\u001b[2J\u001b[31mred',
  'csi\u009b31m',
  'bidi\u202eexe.txt',
  'forged SEAWALL_VM=victim PRIORITY=0',
  'back\\slash',
];
const GOOD = ['good-1', 'good-2'];
const EVENTS = 40;

const sea = (seq: number, gpa = 0x1000n) => seaFrame(seq, { timeNs: BigInt(seq), gpa });

let d: RunningDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.kill();
  if (d) removeDir(d.dir);
});

test('hostile VM ids: every VM counted exactly, no log line forged or raw', async () => {
  const ids = [...HOSTILE, ...GOOD];
  for (const id of ids) {
    const c = await RawClient.open(d.socket);
    await c.hello(id);
    // In one write, so hostile and good events share batches.
    c.send(Buffer.concat(Array.from({ length: EVENTS }, (_, i) => sea(i + 1))));
    await c.waitFor('verdict', (m) => m.seq === EVENTS);
    c.destroy();
  }
  const url = d.metricsUrl as string;
  const text = await scrape(url);
  for (const id of ids) {
    const label = `vm="${printable(id).replaceAll('\\', '\\\\')}"`;
    const n = metricSum(text, 'seawall_memory_errors_total', (l) => l.includes(label));
    assert.equal(n, EVENTS, `VM ${JSON.stringify(id)} counted ${n} times`);
  }
  assert.equal(metricSum(text, 'seawall_memory_errors_total'), EVENTS * ids.length);

  await until(() => d.output.some((l) => l.includes('good-2')), 10_000, 'the log lines');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: what must never reach the log raw
  const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
  for (const line of d.output) {
    assert.ok(!raw.test(line), `raw control character in ${JSON.stringify(line)}`);
    // A forged field can only appear inside a quoted message or value, never as a field of its own.
    assert.ok(!/^[^"]* SEAWALL_VM=victim/.test(line), `forged field in ${JSON.stringify(line)}`);
    assert.ok(!/^nl$|^SEAWALL_VM=victim/.test(line), `a forged line: ${JSON.stringify(line)}`);
  }
});

test('printable escapes controls, separators and format characters, and maps back to one id', () => {
  assert.equal(printable('a\nb'), 'a\\x0ab');
  assert.equal(printable('\u001b[2J'), '\\x1b[2J');
  assert.equal(printable('\u009b'), '\\x9b');
  assert.equal(printable('x\u202ey'), 'x\\u202ey');
  assert.equal(printable('\u2028'), '\\u2028');
  assert.equal(printable('back\\x0a'), 'back\\\\x0a');
  assert.notEqual(printable('a\n'), printable('a\\x0a'));
  assert.equal(printable('plain-vm ünïcode'), 'plain-vm ünïcode');
});

test('a seq reused after its verdict gets its own row', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('reuse-vm');
  c.send(sea(5, 0x5000n));
  await c.waitFor('verdict', (m) => m.seq === 5);
  const seen = c.received.length;
  c.send(sea(5, 0x6000n));
  await until(
    () => c.received.slice(seen).some((m) => m.type === 'verdict' && m.seq === 5),
    10_000,
    'the second verdict',
  );
  c.destroy();
  const rows = await controlRequest(d.controlSocket, 'events', { vm: 'reuse-vm' });
  assert.equal(rows.length, 2, 'two events, two rows');
  assert.deepEqual(rows.map((r) => r.gpa).sort(), ['0x0000000000005000', '0x0000000000006000']);
});

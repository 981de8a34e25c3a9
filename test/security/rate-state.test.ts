/**
 * Issue 12, item 6: the rate/repeat state is bounded per VM. A VM that floods the daemon with
 * thousands of distinct pages, and a stream of fresh VM ids past the state's VM bound, do not
 * change the decisions taken for a VM with a live session: its repeat page is still a repeat and
 * its rate window still counts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { ACTION } from '../../protocol/index.js';
import { seaFrame } from '../../vmm/sample-events.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { writePolicy } from './fixtures.js';

const sea = (seq: number, gpa: bigint) => seaFrame(seq, { timeNs: BigInt(seq), gpa });

let d: RunningDaemon;
let dir: string;
before(async () => {
  dir = mkdtempSync('/tmp/seawall-rate-');
  // A small VM bound (rateStateBound) so that a stream of fresh ids passes it quickly.
  const policy = writePolicy(dir, 'repeat-and-rate', [
    'rateStateBound: 16',
    'rules:',
    '  - name: third-in-a-minute',
    '    match: { labels: { role: victim }, rate: { threshold: 3 / 1h, scope: vm } }',
    '    action: { type: kill, grace: 1h }',
    '  - name: repeat-page',
    '    match: { labels: { role: victim }, repeatPage: true }',
    '    action: { type: none }',
    'default:',
    '  action: { type: inject, abort: data }',
  ]);
  d = await startDaemon({ args: ['--policy', policy], metrics: false });
});
after(async () => {
  await d?.kill();
  if (d) removeDir(d.dir);
  if (dir) removeDir(dir);
});

async function verdict(c: RawClient, seq: number, gpa: bigint): Promise<number> {
  c.send(sea(seq, gpa));
  return (await c.waitFor('verdict', (m) => m.seq === seq)).action;
}

test("a flood of pages and of fresh VM ids leaves another VM's rate and repeat decisions unchanged", async () => {
  const victim = await RawClient.open(d.socket);
  await victim.hello('victim', { labels: { role: 'victim' } });
  assert.equal(await verdict(victim, 1, 0xa000n), ACTION.INJECT, 'first error: default');

  // 5,000 distinct pages from one VM: past the per-VM page bound (4,096).
  const flooder = await RawClient.open(d.socket);
  await flooder.hello('flooder');
  flooder.send(Buffer.concat(Array.from({ length: 5000 }, (_, i) => sea(i + 1, BigInt(i + 1) << 12n))));
  await flooder.waitFor('verdict', (m) => m.seq === 5000);
  flooder.destroy();
  // 40 fresh VM ids, each one event: past the state's VM bound (16).
  for (let i = 0; i < 40; i++) {
    const c = await RawClient.open(d.socket);
    await c.hello(`fresh-${i}`);
    await verdict(c, 1, 0x1000n);
    c.destroy();
  }

  assert.equal(await verdict(victim, 2, 0xa000n), ACTION.RESUME, 'second error on the page: a repeat');
  assert.equal(await verdict(victim, 3, 0xb000n), ACTION.KILL, 'third error within the hour: the rate rule');
  victim.destroy();
});

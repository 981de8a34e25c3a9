/**
 * The C plugin when the daemon answers after the deadline: a late KILL is handed to the VMM, since
 * the daemon enforces it all the same (docs/protocol.md §5.1, §9 rule 4), and a frozen daemon holds
 * vCPUs queued on the VMM's mutex for about one deadline, not one each (vmm/c/seawall_plugin.h).
 * Fixtures of test/protocol/fixtures/ that play the daemon's end of a socketpair by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFile as run } from '../helpers/processes.js';
import { cBuildDir, fixtureBinary } from './c-fixtures.js';

cBuildDir(); // made here, at the top, so that it is removed after the file's tests, not the first one's

test('a late KILL reaches the late-kill callback wherever it is read, and 1.1 still says the vCPU got the fallback', async (t) => {
  const bin = await fixtureBinary(t, 'late-kill');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  const kill = (step: string, calls: number, seq: number, grace: number) =>
    `${step} calls=${calls} seq=${seq} action=KILL grace=${grace} source=daemon ctx=1 late_kills=${calls}`;
  assert.deepEqual(stdout.trim().split('\n'), [
    'exit1 INJECT fallback',
    'poll r=1',
    kill('poll', 1, 1, 1500),
    // APPLIED seq 1, action INJECT, source FALLBACK: the vCPU got the fallback.
    'poll wrote applied/1/1/1',
    // Read before the next exit's event goes out; that exit still gets its own verdict.
    'exit3 RESUME daemon',
    kill('exchange', 2, 2, 700),
    'exchange wrote sea2 applied/2/1/1 sea3',
    'poll r=1',
    kill('resume', 2, 2, 700), // a late RESUME calls nothing
    'exit6 INJECT fallback connected=0',
    kill('dropped', 3, 5, 300), // read behind the write that found the daemon gone
    kill('close', 4, 7, 0),
  ]);
});

test('behind one mutex, a frozen daemon makes one exit wait its deadline and the queued ones get the fallback at once', async (t) => {
  const bin = await fixtureBinary(t, 'mutex-stall');
  if (!bin) return;
  const { stdout } = await run(bin, ['300'], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    // One of the four waited its deadline; the three queued behind it were answered at once, and
    // their events still went out for the daemon to decide.
    'frozen fallbacks=4 stalled_fallbacks=3 connected=1 sent=mmio1 mmio2 mmio3 mmio4',
    'later fallback stalled_fallbacks=4',
    // The late verdict for seq 1 ends the stall: the next exit waits for, and gets, its verdict.
    'late-verdict daemon stalled_fallbacks=4',
    'missed fallback stalled_fallbacks=4',
    'echo daemon stalled_fallbacks=4', // a HEARTBEAT echo ends the stall too
    'sent=mmio5 t33 mmio6 mmio7 mmio8',
  ]);
});

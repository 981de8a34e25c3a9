/**
 * The C plugin's replay sessions (docs/protocol.md §9 rules 3, 5 and 6) where the bound of the kept
 * events and the end of the session meet: fixtures of test/protocol/fixtures/ that play the daemon's
 * end of a socketpair by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFile as run } from '../helpers/processes.js';
import { cBuildDir, fixtureBinary } from './c-fixtures.js';

cBuildDir(); // made here, at the top, so that it is removed after the file's tests, not the first one's

/** The words for the REPLAYs of seqs `from` to `to` and their HEARTBEAT, after the HELLO. */
function replays(from: number, to: number): string {
  const seqs = Array.from({ length: to - from + 1 }, (_, i) => `sea${from + i}r`);
  return ['hello/1.1', ...seqs, 'hb'].join(' ');
}

test('a replay session ended by an ERROR drops at most one replay, counting the one the bound pushed out', async (t) => {
  const bin = await fixtureBinary(t, 'refused-after-bound');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    `welcome-1 sent=${replays(1, 64)} kept=64 oldest=1 newest=64 dropped=0 refused=0`,
    // A live exit decided late while the echo is awaited: the bound pushes out seq 1.
    'late sent=sea65 kept=64 oldest=2 newest=65 dropped=1 refused=0',
    // The daemon refused seq 1 and stored nothing after it: seq 2 stays kept.
    'error-1 sent=- kept=64 oldest=2 newest=65 dropped=1 refused=0',
    `welcome-2 sent=${replays(2, 65)} kept=64 oldest=2 newest=65 dropped=1 refused=0`,
    // No drop by the bound in this session: its oldest replay goes, as §9 rule 6 says.
    'error-2 sent=- kept=63 oldest=3 newest=65 dropped=1 refused=1',
  ]);
});

test('an echo of the replays read while looking for the ERROR behind a failed write acknowledges them', async (t) => {
  const bin = await fixtureBinary(t, 'echo-behind-write');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    `drop sent=${replays(1, 3)} r=1 kept=3 refused=0 backoff=100`,
    // The echo came before the ERROR: nothing kept, nothing refused, and the backoff started over at
    // 50 ms before the loss doubled it (without the echo it would be 200).
    `echo-error sent=${replays(1, 3)} r=-1 kept=0 refused=0 backoff=100`,
    'next sent=hello/1.1 r=0 kept=0 refused=0 backoff=100', // nothing replayed again; WELCOME resets nothing
  ]);
});

/**
 * The reference client's kept events against their bound (docs/protocol.md §9, point 3): the
 * replays a lost connection puts back in front of the events kept meanwhile never leave more than
 * `maxReplay` kept; the oldest past it are dropped and counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventMsg } from '../../protocol/index.js';
import { ReplayQueue } from '../../vmm/replay-queue.js';
import { seaExit } from '../../vmm/sample-events.js';

const kept = (seq: number): EventMsg =>
  ({ ...seaExit({ vcpu: 0 }), seq, timeNs: BigInt(seq), replay: true, fallbackAction: 1 }) as EventMsg;

test('replays put back after a lost connection are trimmed to the bound, the drops counted', () => {
  const q = new ReplayQueue(3);
  for (const seq of [1, 2, 3]) assert.equal(q.keep(kept(seq), false), false);
  assert.deepEqual(
    q.takeBatch()?.events.map((m) => m.seq),
    [1, 2, 3],
  );
  // Kept while the batch awaits its echo.
  for (const seq of [4, 5]) q.keep(kept(seq), false);
  assert.deepEqual(q.disconnected(), { refused: undefined, overflow: 2 });
  assert.equal(q.size, 3);
  assert.deepEqual(
    q.takeBatch()?.events.map((m) => m.seq),
    [3, 4, 5],
    'the oldest went',
  );
});

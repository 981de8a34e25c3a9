/**
 * The replay keys of rows not yet committed (store/held-rows.ts `PendingKeys`): a replay matches a
 * pending row only on its VM, seq and exit time together; a seq reused with another time is
 * another event; a key pending twice stays pending until it is forgotten twice.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PendingKeys } from '../../store/held-rows.js';

const T1 = '0x18a0000000000001';
const T2 = '0x18a0000000000002';
const key = (vm: string, seq: number, time: string) => ({ vm, seq, time });

test('a key is pending on its VM, seq and time together', () => {
  const keys = new PendingKeys();
  keys.add(key('vm-a', 7, T1));
  assert.equal(keys.has(key('vm-a', 7, T1)), true);
  assert.equal(keys.has(key('vm-a', 7, T2)), false, 'the seq reused, another exit');
  assert.equal(keys.has(key('vm-a', 8, T1)), false, 'another seq');
  assert.equal(keys.has(key('vm-b', 7, T1)), false, 'another VM');
});

test('a seq pending under several times keeps each until it is forgotten', () => {
  const keys = new PendingKeys();
  keys.add(key('vm-a', 7, T1));
  keys.add(key('vm-a', 7, T2));
  assert.equal(keys.has(key('vm-a', 7, T1)), true);
  assert.equal(keys.has(key('vm-a', 7, T2)), true);
  keys.forget([key('vm-a', 7, T1)]);
  assert.equal(keys.has(key('vm-a', 7, T1)), false);
  assert.equal(keys.has(key('vm-a', 7, T2)), true);
  keys.forget([key('vm-a', 7, T2)]);
  assert.equal(keys.has(key('vm-a', 7, T2)), false);
});

test('a key pending twice is forgotten one at a time; unknown keys change nothing', () => {
  for (const other of [T2, null]) {
    const keys = new PendingKeys();
    // With another time under the seq its times are a list; alone, a single time.
    if (other) keys.add(key('vm-a', 7, other));
    keys.add(key('vm-a', 7, T1));
    keys.add(key('vm-a', 7, T1));
    keys.forget([key('vm-a', 7, T1), key('vm-a', 9, T1), key('vm-z', 7, T1)]);
    assert.equal(keys.has(key('vm-a', 7, T1)), true, `still pending once (other time: ${other})`);
    keys.forget([key('vm-a', 7, T1)]);
    assert.equal(keys.has(key('vm-a', 7, T1)), false);
    // Forgotten more often than added: nothing below zero, the key can be pending again.
    keys.forget([key('vm-a', 7, T1)]);
    keys.add(key('vm-a', 7, T1));
    assert.equal(keys.has(key('vm-a', 7, T1)), true);
  }
});

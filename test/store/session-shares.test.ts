/**
 * The rows in flight per session that the write-ahead bound reads (store/session-shares.ts): a
 * batch's rows are counted per session (duplicates are not rows), a file's counts become its
 * segment's, a commit takes them off, and the sessions held are those with their even share.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionShares } from '../../store/session-shares.js';
import { record, session } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const a = session('vm-a', 1n);
const b = session('vm-b', 2n);
const c = session('vm-c', 3n);

test('rows are counted per session as runs and duplicates, which get no row, are not', () => {
  const shares = new SessionShares();
  const dup = record({ session: b, seq: 9, timeMs: T0, replay: true });
  dup.duplicate = true;
  const batch = [
    record({ session: a, seq: 1, timeMs: T0 }),
    record({ session: a, seq: 2, timeMs: T0 }),
    record({ session: b, seq: 1, timeMs: T0 }),
    dup,
    record({ session: a, seq: 3, timeMs: T0 }),
  ];
  shares.count(batch);
  shares.count([record({ session: c, seq: 1, timeMs: T0 })]);
  assert.equal(shares.of(1n), 0, 'nothing is in flight before the hand-over');
  const file = shares.takeFile();
  assert.deepEqual([...file].sort(), [
    [1n, 3],
    [2n, 1],
    [3n, 1],
  ]);
  assert.equal(shares.takeFile().size, 0, 'the next file starts from none');
  shares.add(file);
  assert.deepEqual([shares.of(1n), shares.of(2n), shares.of(3n)], [3, 1, 1]);
});

test('a commit takes its segment off, and a session with nothing left is forgotten', () => {
  const shares = new SessionShares();
  shares.count([record({ session: a, seq: 1, timeMs: T0 }), record({ session: b, seq: 1, timeMs: T0 })]);
  const first = shares.takeFile();
  shares.add(first);
  shares.count([record({ session: a, seq: 2, timeMs: T0 })]);
  const second = shares.takeFile();
  shares.add(second);
  assert.equal(shares.of(1n), 2);
  shares.remove(first);
  assert.deepEqual([shares.of(1n), shares.of(2n)], [1, 0]);
  assert.deepEqual(shares.heaviest(), [1n], 'only a session with rows in flight is held');
  shares.remove(second);
  assert.deepEqual(shares.heaviest(), []);
});

test("a file's rows dropped (held through a fault) reach no segment", () => {
  const shares = new SessionShares();
  shares.count([record({ session: a, seq: 1, timeMs: T0 })]);
  shares.dropFile();
  assert.equal(shares.takeFile().size, 0);
});

test('the sessions held are those with at least their even share: one flood, or the heavier half', () => {
  const shares = new SessionShares();
  const rows = (s: typeof a, n: number) =>
    Array.from({ length: n }, (_, i) => record({ session: s, seq: i + 1, timeMs: T0 }));
  shares.count([...rows(a, 90), ...rows(b, 5), ...rows(c, 5)]);
  shares.add(shares.takeFile());
  assert.deepEqual(shares.heaviest(), [1n], 'one VM flooding: only it');
  shares.count([...rows(b, 40), ...rows(c, 20)]);
  shares.add(shares.takeFile());
  // 90, 45, 25: the even share is 53⅓.
  assert.deepEqual(shares.heaviest(), [1n]);
  shares.count(rows(b, 20));
  shares.add(shares.takeFile());
  // 90, 65, 25: the even share is 60.
  assert.deepEqual(shares.heaviest().sort(), [1n, 2n]);
  shares.count([...rows(b, 25), ...rows(c, 65)]);
  shares.add(shares.takeFile());
  assert.deepEqual(shares.heaviest().sort(), [1n, 2n, 3n], 'all at their share: all held');
});

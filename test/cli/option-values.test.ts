/** `--since` (cli/option-values.ts): a duration back from now, or an ISO time read as seawall prints times. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sinceValue } from '../../cli/option-values.js';

test('--since: a time without a zone is UTC whatever the host zone; a zone given is kept', (t) => {
  const before = process.env.TZ;
  t.after(() => {
    if (before === undefined) delete process.env.TZ;
    else process.env.TZ = before;
  });
  // Node reads TZ again when it is set: local time is now five hours behind UTC (in December).
  process.env.TZ = 'America/New_York';
  assert.notEqual(new Date(2026, 11, 6, 10, 15).getTime(), Date.UTC(2026, 11, 6, 10, 15));
  const since = sinceValue(() => Date.UTC(2026, 11, 7));
  assert.equal(since('2026-12-06T10:15'), Date.UTC(2026, 11, 6, 10, 15));
  assert.equal(since('2026-12-06T10:15:30.5'), Date.UTC(2026, 11, 6, 10, 15, 30, 500));
  assert.equal(since('2026-12-06'), Date.UTC(2026, 11, 6));
  assert.equal(since('2026-12-06T10:15Z'), Date.UTC(2026, 11, 6, 10, 15));
  assert.equal(since('2026-12-06T10:15+01:00'), Date.UTC(2026, 11, 6, 9, 15));
  assert.equal(since('1h'), Date.UTC(2026, 11, 6, 23));
  assert.throws(() => since('2026-13-40T99:99'), /not a valid ISO 8601 time/);
});

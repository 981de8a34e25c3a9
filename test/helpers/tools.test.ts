/**
 * Under CI a missing tool fails its test (test/helpers/tools.ts): whatever value the CI system gives
 * CI, a run there must never turn a missing tool into a skip.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { underCi } from './tools.js';

test('CI set to true, 1 or a CI system name is CI; unset, empty, false or 0 is not', (t) => {
  const was = process.env.CI;
  t.after(() => {
    if (was === undefined) delete process.env.CI;
    else process.env.CI = was;
  });
  const seen = (value: string | undefined) => {
    if (value === undefined) delete process.env.CI;
    else process.env.CI = value;
    return underCi();
  };
  for (const value of ['true', 'TRUE', '1', 'woodpecker', 'yes']) assert.equal(seen(value), true, value);
  for (const value of [undefined, '', ' ', 'false', 'False', '0'])
    assert.equal(seen(value), false, String(value));
});

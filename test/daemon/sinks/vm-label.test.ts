/** The `vm` label of a VM id: one per id, so no VM can claim another's series. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { vmLabel } from '../../../daemon/sinks/vm-label.js';
import { MAX_LABEL_VALUE_LENGTH } from '../../../metrics/index.js';

test('a VM that claims another’s shortened label as its id gets a series of its own', () => {
  const long = `vm-${'x'.repeat(200)}`;
  const shortened = vmLabel(long);
  assert.equal(shortened.length, MAX_LABEL_VALUE_LENGTH);
  assert.match(shortened, /~[0-9a-f]{16}$/);
  // The claimed id is itself printable and within the bound: it used to pass through unchanged.
  assert.notEqual(vmLabel(shortened), shortened);
  assert.equal(vmLabel(shortened).length, MAX_LABEL_VALUE_LENGTH);
  assert.equal(vmLabel('vm-7'), 'vm-7', 'an ordinary id is its own label');
});

/** A thrown value as message text (errors/thrown-text.ts), whatever was thrown. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { thrownText } from '../../errors/index.js';

test('an error gives its message; a message-less object its code; anything else a bounded text', () => {
  assert.equal(thrownText(new Error('disk full')), 'disk full');
  assert.equal(thrownText(new TypeError()), 'TypeError');
  assert.equal(thrownText({ code: 'SQLITE_NOTADB' }), 'SQLITE_NOTADB');
  assert.equal(thrownText({ message: 'no such table', code: 'SQLITE_ERROR' }), 'no such table');
  assert.equal(thrownText('plain'), 'plain');
  assert.equal(thrownText(null), 'null');
  assert.equal(thrownText(undefined), 'undefined');
  assert.equal(thrownText({ a: 1 }), '{ a: 1 }');
  assert.equal(thrownText({ big: 'x'.repeat(1000) }).length, 200);
});

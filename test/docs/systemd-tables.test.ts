/**
 * docs/systemd.md's two reference tables match the code: the journal fields table names exactly
 * the SEAWALL_* fields of systemd/journal-fields.ts (an operator filtering on a field finds it
 * there), and the MESSAGE_ID table lists exactly systemd/message-ids.ts, id beside constant.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { JournalField } from '../../systemd/journal-fields.js';
import { MessageId } from '../../systemd/message-ids.js';

const doc = readFileSync(new URL('../../docs/systemd.md', import.meta.url), 'utf8');
const rows = doc.split('\n').filter((line) => line.startsWith('| `'));

test('the journal fields table documents every JournalField and nothing else', () => {
  const documented = rows
    .map((r) => /^\| `(SEAWALL_[A-Z0-9_]+)` \|/.exec(r)?.[1])
    .filter((f) => f !== undefined);
  assert.deepEqual([...documented].sort(), Object.values(JournalField).sort());
});

test('the MESSAGE_ID table lists every MessageId with its constant', () => {
  const listed = rows
    .map((r) => /^\| `([0-9a-f]{32})` \| `([A-Z_]+)` \|/.exec(r))
    .filter((m) => m !== null)
    .map((m) => [m[2]!, m[1]!]);
  assert.deepEqual(Object.fromEntries(listed), { ...MessageId });
  assert.equal(listed.length, Object.keys(MessageId).length, 'each constant listed once');
});

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageFields } from '../../systemd/message-fields.js';
import { ALL_MESSAGE_IDS, MessageId } from '../../systemd/message-ids.js';
import { runFile as run } from '../helpers/processes.js';
import { requireOrSkip, tools } from './tools.js';

const CATALOG = new URL('../../systemd/catalog/seawall.catalog', import.meta.url).pathname;
const text = readFileSync(CATALOG, 'utf8');
const headers = [...text.matchAll(/^-- (\S+)$/gm)].map((m) => m[1]!);
const entries = text.split(/^-- /m).slice(1);

test('every MESSAGE_ID has exactly one catalog entry and every entry is a MESSAGE_ID', () => {
  assert.equal(ALL_MESSAGE_IDS.size, Object.keys(MessageId).length, 'MESSAGE_IDs are unique');
  for (const id of ALL_MESSAGE_IDS) assert.match(id, /^[0-9a-f]{32}$/);
  assert.deepEqual([...headers].sort(), [...ALL_MESSAGE_IDS].sort());
});

test('each entry has Subject, Defined-By: seawall, Support and Documentation', () => {
  assert.equal(entries.length, headers.length);
  for (const entry of entries) {
    const id = entry.slice(0, 32);
    const [head = '', body = ''] = entry.split(/\n\n/, 2);
    assert.match(head, /^Subject: .+$/m, id);
    assert.match(head, /^Defined-By: seawall$/m, id);
    assert.match(head, /^Support: \S+$/m, id);
    assert.match(head, /^Documentation: \S+$/m, id);
    assert.notEqual(body.trim(), '', `${id} has an explanation`);
  }
});

test('each entry names only @FIELD@s that every journal entry with its MESSAGE_ID carries', () => {
  // journalctl -x fills a placeholder from the entry it explains; one the entry lacks stays unfilled.
  const carried: Readonly<Record<string, readonly string[]>> = MessageFields;
  const names = new Map(Object.entries(MessageId).map(([name, id]) => [id as string, name]));
  const uncarried = [];
  for (const entry of entries) {
    const id = entry.slice(0, 32);
    for (const [, field] of entry.matchAll(/@([A-Z0-9_]+)@/g))
      if (!carried[id]?.includes(field!)) uncarried.push(`${id} (${names.get(id)}): @${field}@`);
  }
  assert.deepEqual(uncarried, [], 'catalog placeholders for fields not in MessageFields of their id');
});

test('journalctl --update-catalog compiles it in a scratch root and lists every id', async (t) => {
  if (!requireOrSkip(t, tools({ journalctl: 'systemd' }))) return;
  // --root= keeps both the input (<root>/usr/lib/systemd/catalog) and the compiled database
  // (<root>/var/lib/systemd/catalog/database) away from the host.
  const root = mkdtempSync(join(tmpdir(), 'seawall-catalog-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'usr/lib/systemd/catalog'), { recursive: true });
  copyFileSync(CATALOG, join(root, 'usr/lib/systemd/catalog/seawall.catalog'));
  const update = await run('journalctl', [`--root=${root}`, '--update-catalog']);
  assert.equal(update.stdout + update.stderr, '');
  const { stdout } = await run('journalctl', [`--root=${root}`, '--list-catalog']);
  const listed = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split(' ')[0]);
  assert.deepEqual(listed.sort(), [...ALL_MESSAGE_IDS].sort());
  assert.match(stdout, /^3344b555b8354e1b94d17b4b532817c4 seawall: seawall started$/m);
});

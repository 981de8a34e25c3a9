/**
 * The attach reply statuses are one list: protocol/attach-wire.ts ATTACH_STATUS, the C plugin's
 * enum seawall_attach_status (vmm/c/seawall_plugin.h), the Rust crate's attach_wire::status and the
 * table in docs/actions.md, so that a status the daemon sends has a name on every plugin.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ATTACH_STATUS } from '../../protocol/index.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');

const pairs = (re: RegExp, text: string) =>
  Object.fromEntries([...text.matchAll(re)].map((m) => [m[1] as string, Number(m[2])]));

test('every attach status has the same name and number in TypeScript, C, Rust and the docs', () => {
  const c = pairs(/SEAWALL_ATTACH_([A-Z_]+) = (\d+)/g, read('vmm/c/seawall_plugin.h'));
  const rust = pairs(
    /pub const ([A-Z_]+): u32 = (\d+);/g,
    read('vmm/rust/src/attach_wire.rs').split('pub mod status')[1]?.split('\n}')[0] ?? '',
  );
  const docs = Object.fromEntries(
    [...read('docs/actions.md').matchAll(/^\| (\d+) \| ([A-Z_]+)\b/gm)].map((m) => [m[2], Number(m[1])]),
  );
  assert.deepEqual(c, { ...ATTACH_STATUS });
  assert.deepEqual(rust, { ...ATTACH_STATUS });
  assert.deepEqual(docs, { ...ATTACH_STATUS });
});

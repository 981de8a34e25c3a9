/**
 * `seawall policy explain --store FILE` with a file that is not a seawall event store: a failure
 * (exit 1) naming the file, never SQLite's error escaping as an internal error with a stack. And
 * without `--event`, the event to explain is the stored one `--event-id` names: neither is a usage
 * error (the stored event itself is explained in test/daemon/e2e/why-kill.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { main } from '../../cli/cli.js';

const POLICY = new URL('../../policies/examples/tiered.yaml', import.meta.url).pathname;
const EVENT = JSON.stringify({
  kind: 'sea',
  vm: { id: 'vm1', labels: { tier: 'silver' } },
  vcpu: 0,
  esr: '0x92000010',
  gpa: '0x8000000',
  time: '2026-01-01T00:00:00Z',
});

async function explain(store: string) {
  let out = '';
  let err = '';
  const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
  const argv = ['policy', 'explain', '--policy', POLICY, '--event', EVENT, '--store', store];
  const status = await main(argv, io, { env: {} });
  return { status, out, err };
}

test('explain --store with a file that is not an event store fails naming the file, exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-explain-'));
  try {
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n'.repeat(20));
    const other = join(dir, 'other.sqlite');
    const db = new Database(other);
    db.exec('CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)');
    db.close();
    for (const [file, why] of [
      [passwd, /file is not a database/],
      [other, /it has no seawall schema/],
    ] as [string, RegExp][]) {
      const r = await explain(file);
      assert.equal(r.status, 1, r.err);
      assert.equal(r.out, '', 'no explanation is printed');
      assert.match(r.err, new RegExp(`^seawall policy explain: ${file} is not a seawall event store \\(`));
      assert.match(r.err, why);
      assert.doesNotMatch(r.err, /SqliteError|\n\s+at /, 'no stack');
    }
    // A missing file keeps its own message.
    const missing = await explain(join(dir, 'missing.sqlite'));
    assert.equal(missing.status, 1);
    assert.match(missing.err, /cannot open event store .*missing\.sqlite/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('explain without --event needs --store and --event-id, the stored event to explain: else exit 2', async () => {
  for (const extra of [[], ['--store', '/nonexistent/events.sqlite'], ['--event-id', '7']]) {
    let err = '';
    const io = { out: () => {}, err: (t: string) => (err += t) };
    const status = await main(['policy', 'explain', '--policy', POLICY, ...extra], io, { env: {} });
    assert.equal(status, 2, `${extra.join(' ')}: ${err}`);
    assert.match(err, /--event JSON, or --store FILE --event-id ID|--event-id names an event in the store/);
  }
});

/**
 * The control CLI commands against a control server started here on a real socket with a real
 * store, called as cli.ts calls them (argv + io), with the exit status cli.ts would return.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main } from '../../cli/cli.js';
import type { CliIo } from '../../cli/cli-error.js';
import { STATUS_MAX_SESSIONS } from '../../control/index.js';
import { ANSWER_MAX_BYTES } from '../../store/answer-bytes.js';
import { record, session } from '../store/records.js';
import { startControl } from './fixture.js';

/** `seawall <command> …` in this process, with its exit status and output; no daemon search outside `env`. */
async function run(command: string, argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const io: CliIo = {
    out: (t) => {
      out += t.endsWith('\n') ? t : `${t}\n`;
    },
    err: (t) => {
      err += t.endsWith('\n') ? t : `${t}\n`;
    },
  };
  const status = await main([command, ...argv], io, { env: { XDG_RUNTIME_DIR: '/nonexistent', ...env } });
  return { status, out, err };
}

const HOUR = 3_600_000;

test('events --vm X --since 1h --json returns exactly that VM’s recent events', async () => {
  const f = await startControl();
  const now = Date.now();
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  f.store.append([
    record({ session: a, seq: 1, timeMs: now - 2 * HOUR }),
    record({ session: a, seq: 2, timeMs: now - 30 * 60_000 }),
    record({ session: b, seq: 1, timeMs: now - 20 * 60_000 }),
    record({ session: a, seq: 3, timeMs: now - 60_000, action: 'kill' }),
  ]);
  const r = await run('events', ['--vm', 'vm-a', '--since', '1h', '--json', '--control-socket', f.socket]);
  assert.equal(r.status, 0, r.err);
  const events = JSON.parse(r.out) as { vm: string; seq: number; action: string }[];
  assert.deepEqual(
    events.map((e) => [e.vm, e.seq, e.action]),
    [
      ['vm-a', 2, 'inject'],
      ['vm-a', 3, 'kill'],
    ],
  );
  const table = await run('events', ['--limit', '2', '--control-socket', f.socket]);
  assert.equal(table.status, 0);
  const lines = table.out.trim().split('\n');
  assert.match(lines[0]!, /^TIME\s+VM\s+VCPU\s+KIND\s+SEVERITY\s+ESR\s+GPA\s+RULE\s+OUTCOME$/);
  assert.equal(lines.length, 3);
  assert.match(lines[2]!, /vm-a\s+0\s+sea\s+uer\s+0x92000410\s+0x80001000\s+kill-uc\s+kill/);
  await f.close();
});

test('bad arguments exit 2 with a clear message, before any request', async () => {
  for (const [argv, msg] of [
    [['--since', 'banana'], /--since <when>' argument 'banana' is invalid\. neither a duration/],
    [['--limit', '0'], /--limit <n>' argument '0' is invalid\. not a whole number from 1 to 10000/],
    [['--limit', '1e3'], /--limit/],
    [['--frobnicate'], /unknown option '--frobnicate'/],
    [['extra'], /too many arguments for 'events'/],
    [['--vm'], /option '--vm <id>' argument missing/],
  ] as [string[], RegExp][]) {
    const r = await run('events', ['--control-socket', '/nonexistent/control.sock', ...argv]);
    assert.equal(r.status, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, msg);
  }
  assert.equal((await run('status', ['--verbose'])).status, 2);
});

test('a time before the epoch and a VM id over the protocol’s bound exit 2 before any request', async () => {
  const socket = ['--control-socket', '/nonexistent/control.sock'];
  const long = 'v'.repeat(300);
  for (const [cmd, argv, msg] of [
    [
      'events',
      ['--since', '1960-01-01'],
      /--since <when>' argument '1960-01-01' is invalid\. before 1970-01-01T00:00Z, the epoch/,
    ],
    ['why', ['vm-7', '--since', '1969-12-31T23:59:59Z'], /before 1970-01-01T00:00Z, the epoch/],
    ['why', [long], /invalid for argument 'vm'\. 300 characters long; a VM id has at most 256/],
    ['events', ['--vm', long], /--vm <id>' argument '[v]+' is invalid\. 300 characters long/],
    ['poison', ['--vm', long], /--vm <id>' argument '[v]+' is invalid\. 300 characters long/],
  ] as [string, string[], RegExp][]) {
    const r = await run(cmd, [...socket, ...argv]);
    assert.equal(r.status, 2, `${cmd} ${argv.join(' ').slice(0, 40)}: ${r.err}`);
    assert.match(r.err, msg);
    assert.doesNotMatch(r.err, /SEAWALL_CONTROL_BAD_REQUEST/);
  }
  // At the bound and at the epoch the values are taken (the request then fails: no daemon, exit 1).
  assert.equal((await run('why', [...socket, 'v'.repeat(256)])).status, 1);
  assert.equal((await run('events', [...socket, '--since', '1970-01-01T00:00Z'])).status, 1);
});

test('a daemon that is not running: exit 1 saying so', async () => {
  for (const cmd of ['status', 'vms', 'events', 'poison', 'reload']) {
    const r = await run(cmd, ['--control-socket', '/nonexistent/seawall/control.sock']);
    assert.equal(r.status, 1);
    assert.match(r.err, /no seawall daemon is listening on \/nonexistent\/seawall\/control\.sock/);
  }
});

test('reload: 0 when the new policy is live, 1 with the errors when refused', async () => {
  const f = await startControl();
  const ok = await run('reload', ['--control-socket', f.socket]);
  assert.equal(ok.status, 0);
  assert.match(ok.out, /policy v2 is live/);
  f.nextReload = { ok: false, version: 'v2', issues: ['rules[0].match.tenant: expected string'] };
  const refused = await run('reload', ['--control-socket', f.socket]);
  assert.equal(refused.status, 1);
  assert.match(refused.err, /refused; v2 is still in force:\n {2}rules\[0\]\.match\.tenant: expected string/);
  await f.close();
});

test('status, vms and poison print tables and --json', async () => {
  const f = await startControl();
  const a = session('vm-a', 1n);
  f.sessions.push(a);
  f.store.append([record({ session: a, seq: 1, timeMs: Date.now(), gpa: 0x7000n })]);
  const st = await run('status', ['--control-socket', f.socket]);
  assert.equal(st.status, 0);
  assert.match(st.out, /^seawall 0\.0\.0-test, pid \d+, up 1m 0s/);
  assert.match(st.out, /store {5}.*events\.sqlite: 1 event \(inject 1\), 1 VM, 1 poisoned page/);
  assert.match(st.out, /sessions {2}1\n {2}VM\s+SESSION/);
  const vms = await run('vms', ['--json', '--control-socket', f.socket]);
  assert.deepEqual(
    (JSON.parse(vms.out) as { vm: string; connected: boolean }[]).map((v) => [v.vm, v.connected]),
    [['vm-a', true]],
  );
  const poison = await run('poison', ['--vm', 'vm-a', '--control-socket', f.socket]);
  assert.match(poison.out, /^VM\s+GPA\s+COUNT\s+FIRST SEEN\s+LAST SEEN\nvm-a\s+0x0000000000007000\s+1\s/);
  await f.close();
});

test('status past STATUS_MAX_SESSIONS sessions lists the first opened and says how many more', async () => {
  const f = await startControl();
  for (let i = 1_024; i >= 1; i--) f.sessions.push(session(`vm-${String(i).padStart(4, '0')}`, BigInt(i)));
  const st = await run('status', ['--control-socket', f.socket]);
  assert.equal(st.status, 0, st.err);
  const lines = st.out.trimEnd().split('\n');
  const at = lines.indexOf('sessions  1024');
  assert.ok(at > 0, st.out);
  assert.match(lines[at + 1] ?? '', /^ {2}VM\s+SESSION/);
  const rows = lines.slice(at + 2, -1);
  assert.equal(rows.length, STATUS_MAX_SESSIONS);
  assert.match(rows[0] ?? '', /^ {2}vm-0001\s+1\s/);
  assert.match(
    rows.at(-1) ?? '',
    new RegExp(`^ {2}vm-${String(STATUS_MAX_SESSIONS).padStart(4, '0')}\\s+${STATUS_MAX_SESSIONS}\\s`),
  );
  assert.equal(lines.at(-1), `  … and ${1_024 - STATUS_MAX_SESSIONS} more sessions: seawall vms`);
  const json = JSON.parse((await run('status', ['--json', '--control-socket', f.socket])).out);
  assert.equal(json.sessionCount, 1_024);
  assert.equal(json.sessionsOmitted, 1_024 - STATUS_MAX_SESSIONS);
  await f.close();
});

test("status --vm prints that VM's session alone, with its labels, terminal-safe", async () => {
  const f = await startControl();
  for (let i = 1_024; i >= 1; i--) f.sessions.push(session(`vm-${String(i).padStart(4, '0')}`, BigInt(i)));
  f.sessions.push(session('tenant-a', 2_000n, { tier: 'gold', note: 'a\x1b[2Jb' }));
  const st = await run('status', ['--vm', 'tenant-a', '--control-socket', f.socket]);
  assert.equal(st.status, 0, st.err);
  const lines = st.out.trimEnd().split('\n');
  const at = lines.indexOf('sessions  1025');
  assert.ok(at > 0, st.out);
  assert.match(lines[at + 2] ?? '', /^ {2}tenant-a\s+2000\s/);
  assert.equal(lines[at + 3], '  session 2000 labels: tier=gold, note=a\\x1b[2Jb');
  assert.equal(lines.length, at + 4, 'no other session, no "more sessions" line');
  await f.close();
});

test('poison pages past 10,000 rows: the default says there are more, --all lists every one', async () => {
  const f = await startControl();
  const s = session('vm-many', 7n);
  const n = 10_050;
  const now = Date.now();
  const batch = [];
  for (let i = 0; i < n; i++)
    batch.push(record({ session: s, seq: i + 1, timeMs: now, gpa: BigInt(i + 1) << 12n }));
  f.store.append(batch);
  const first = await run('poison', ['--control-socket', f.socket]);
  assert.equal(first.status, 0);
  assert.equal(first.out.trim().split('\n').length, 1001, 'the header and the first 1000');
  assert.match(first.err, /showing the first 1000 poisoned pages; there are more: --all lists every one/);
  const all = await run('poison', ['--all', '--json', '--control-socket', f.socket]);
  assert.equal(all.status, 0, all.err);
  const pages = JSON.parse(all.out) as { gpa: string }[];
  assert.equal(pages.length, n);
  assert.equal(new Set(pages.map((p) => p.gpa)).size, n);
  assert.equal(all.err, '');
  const events = await run('events', ['--vm', 'vm-many', '--limit', '5', '--control-socket', f.socket]);
  assert.match(events.err, /showing the newest 5 events of vm-many; older ones match too/);
  await f.close();
});

test('VMs past 10,000: the default says there are more, --all lists every one, connected ones among them', async () => {
  const f = await startControl();
  const n = 10_050;
  const now = Date.now();
  const batch = [];
  for (let i = 0; i < n; i++)
    batch.push(
      record({ session: session(`vm-${String(i).padStart(5, '0')}`, BigInt(i + 1)), seq: 1, timeMs: now }),
    );
  f.store.append(batch);
  // Connected, not in the store: it sorts between stored ones, and is listed once.
  f.sessions.push(session('vm-05000x', 99_999n), session('vm-00001', 100_000n));
  const first = await run('vms', ['--control-socket', f.socket]);
  assert.equal(first.status, 0, first.err);
  assert.equal(first.out.trim().split('\n').length, 1001, 'the header and the first 1000');
  assert.match(first.err, /showing the first 1000 VMs; there are more: --all lists every one/);
  const all = await run('vms', ['--all', '--json', '--control-socket', f.socket]);
  assert.equal(all.status, 0, all.err);
  assert.equal(all.err, '');
  const vms = JSON.parse(all.out) as { vm: string; connected: boolean; events: number }[];
  assert.equal(vms.length, n + 1);
  assert.deepEqual(
    vms.map((v) => v.vm),
    [...vms.map((v) => v.vm)].sort(),
  );
  assert.deepEqual(
    vms.filter((v) => v.connected).map((v) => [v.vm, v.events]),
    [
      ['vm-00001', 1],
      ['vm-05000x', 0],
    ],
  );
  const few = await run('vms', ['--limit', `${n + 1}`, '--control-socket', f.socket]);
  assert.equal(few.status, 2);
  await f.close();
});

test('VM ids with ESC and line breaks are shown escaped, never sent raw to the terminal', async () => {
  const f = await startControl();
  const evil = 'vm-\u001b[2J\u001b]0;owned\u0007\nFAKE ROW';
  const s = session(evil, 3n);
  f.sessions.push(s);
  f.store.append([record({ session: s, seq: 1, timeMs: Date.now() })]);
  for (const cmd of ['status', 'vms', 'events', 'poison']) {
    const r = await run(cmd, ['--control-socket', f.socket]);
    assert.equal(r.status, 0, `${cmd}: ${r.err}`);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
    assert.doesNotMatch(r.out, /[\u0000-\u0009\u000b-\u001f\u007f]/, `${cmd} printed a control character`);
    assert.ok(r.out.includes('vm-\\x1b[2J\\x1b]0;owned\\x07\\x0aFAKE ROW'), `${cmd} shows the id escaped`);
    assert.ok(!r.out.split('\n').some((l) => l.startsWith('FAKE ROW')), `${cmd}: no forged line`);
  }
  const why = await run('why', [evil, '--control-socket', f.socket]);
  assert.equal(why.status, 0, why.err);
  assert.match(why.out, /^VM vm-\\x1b\[2J/);
  await f.close();
});

test('events pages through answers the daemon cut at its bytes: a VM whose labels fill every row', async () => {
  const f = await startControl({}, true);
  const labels: Record<string, string> = {};
  for (let i = 0; i < 32; i++) labels[`k${String(i).padStart(62, '0')}`] = '\u0001'.repeat(255);
  const s = session('vm-big', 1n, labels);
  const one = record({ session: s, seq: 1, timeMs: Date.now() - HOUR });
  f.store.append([one]);
  const row = Buffer.byteLength(JSON.stringify(f.store.queries.events({ limit: 1 })));
  // One and a half answers' worth.
  const n = Math.ceil((1.5 * ANSWER_MAX_BYTES) / row);
  for (let from = 2; from <= n; from += 500) {
    const batch = [];
    for (let seq = from; seq < Math.min(from + 500, n + 1); seq++)
      batch.push(record({ session: s, seq, timeMs: Date.now() - HOUR + seq }));
    f.store.append(batch);
  }
  const all = await run('events', ['--json', '--limit', '10000', '--control-socket', f.socket]);
  assert.equal(all.status, 0, all.err);
  assert.deepEqual(
    (JSON.parse(all.out) as { seq: number }[]).map((e) => e.seq),
    Array.from({ length: n }, (_, i) => i + 1),
    'every event once, oldest first, across the answers',
  );
  assert.equal(all.err, '');
  const some = await run('events', ['--json', '--limit', String(n - 1), '--control-socket', f.socket]);
  assert.equal(some.status, 0, some.err);
  assert.deepEqual(
    (JSON.parse(some.out) as { seq: number }[]).map((e) => e.seq),
    Array.from({ length: n - 1 }, (_, i) => i + 2),
  );
  assert.match(some.err, new RegExp(`showing the newest ${n - 1} events; older ones match too`));
  await f.close();
});

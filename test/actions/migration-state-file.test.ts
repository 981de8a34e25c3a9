/**
 * migrations.json: written atomically and read back whole; read as hostile — garbage, the wrong
 * shape, a migration id that would be a header injection, too many entries, too many bytes, a FIFO,
 * a symlink, a directory — each is a warning and nothing remembered, never a throw; a regular file
 * is set aside as migrations.json.bad, over an older one, and anything else is left, neither
 * followed nor moved; an entry whose pid now names a process with another start time, or no
 * process, is dropped; more requests sent than run at once (an older build) are cut down, the rest
 * of the file used. Real files, the real /proc of this process and of a child.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  constants,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  encodeMigrationState,
  loadMigrationState,
  MigrationStateWriter,
  processStartTicks,
  type RememberedMigration,
  writeAtomic,
} from '../../actions/index.js';
import { exitOf, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-mstate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const START = processStartTicks(process.pid) as number;
const mine = (vm: string, over: Partial<RememberedMigration> = {}): RememberedMigration => ({
  vm,
  pid: process.pid,
  startTicks: START,
  ...over,
});

/** A request as a hook was sent it (migration-payload.ts). */
const sentFor = (vm: string, migrationId: string, pages = ['0x8000f000']) => ({
  migrationId,
  vm: { id: vm, labels: { tenant: 'acme' } },
  host: 'hv-1',
  reason: 'policy' as const,
  scope: 'vm' as const,
  rule: 'move',
  policyVersion: 'sha256:abc',
  event: { vm, kind: 'sea', vcpu: 0, gpa: '0x8000f000', severity: 'uer', timeMs: 1_767_225_600_000 },
  poisonedPages: pages,
  poisonedPagesTruncated: false,
  requestedAt: '2026-01-01T00:00:00.000Z',
});
const RUNNING = randomUUID();

const ENTRIES: RememberedMigration[] = [
  mine('vm-accepted', { accepted: randomUUID() }),
  mine('vm-refused', { refused: { policyVersion: 'sha256:abc', migrationId: randomUUID() } }),
  mine('vm-pending', { pending: randomUUID() }),
  mine('vm-running', { pending: RUNNING, sent: sentFor('vm-running', RUNNING) }),
  mine('vm-both', {
    refused: { policyVersion: 'sha256:old', migrationId: randomUUID() },
    pending: randomUUID(),
  }),
];

test('written atomically and read back: the same entries, mode 0600, no temporary file left', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  await writeAtomic(path, encodeMigrationState(ENTRIES));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['migrations.json']);
  assert.deepEqual(loadMigrationState(path, 16), { entries: ENTRIES, warning: null, stale: 0 });
  // What a hook was sent comes back as the same bytes.
  const running = loadMigrationState(path, 16).entries.find((e) => e.vm === 'vm-running');
  assert.equal(JSON.stringify(running?.sent), JSON.stringify(sentFor('vm-running', RUNNING)));
  // Written over, past the temporary file a killed daemon left: the new content whole.
  writeFileSync(`${path}.tmp`, 'left by a daemon killed mid-write'.repeat(100));
  await writeAtomic(path, encodeMigrationState(ENTRIES.slice(1)));
  assert.deepEqual(loadMigrationState(path, 16).entries, ENTRIES.slice(1));
  assert.deepEqual(readdirSync(dir), ['migrations.json']);
});

test('no file: nothing remembered, nothing to warn of', (t) => {
  assert.deepEqual(loadMigrationState(join(tempDir(t), 'migrations.json'), 16), {
    entries: [],
    warning: null,
    stale: 0,
  });
});

test('an entry whose pid names a process with another start time, or none, is dropped', async (t) => {
  const path = join(tempDir(t), 'migrations.json');
  const child = spawnOwned(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const gonePid = child.pid as number;
  const goneStart = processStartTicks(gonePid);
  await within('the child to exit', exitOf(child));
  const kept = mine('vm-kept', { accepted: randomUUID() });
  const entries = [
    mine('vm-reused-pid', { startTicks: START + 1, accepted: randomUUID() }),
    mine('vm-earlier-pid', { startTicks: START - 1, pending: randomUUID() }),
    { vm: 'vm-gone', pid: gonePid, startTicks: goneStart ?? 1, accepted: randomUUID() },
    kept,
    // The same instance twice: the first one is used.
    { ...kept, accepted: randomUUID() },
    // Nothing to remember: not counted, not used.
    mine('vm-empty'),
  ];
  writeFileSync(path, encodeMigrationState(entries));
  const loaded = loadMigrationState(path, 16);
  assert.deepEqual(loaded.entries, [kept]);
  assert.equal(loaded.warning, null);
  assert.equal(loaded.stale, 3);
});

/** Files no daemon wrote: each is set aside with a warning. */
const HOSTILE: Array<[string, string | Buffer]> = [
  ['empty', ''],
  ['garbage bytes', Buffer.from([0xff, 0x00, 0x7b, 0x80, 0x0a])],
  ['not JSON', '{"version":1,"entries":['],
  ['JSON, not an object', '[1,2,3]'],
  ['another version', JSON.stringify({ version: 2, entries: [] })],
  ['an unknown top-level key', JSON.stringify({ version: 1, entries: [], extra: 1 })],
  [
    'an unknown entry key',
    encodeMigrationState([{ ...mine('vm-x', { accepted: randomUUID() }), x: 1 } as never]),
  ],
  [
    'a migration id that is a header injection',
    encodeMigrationState([mine('vm-x', { pending: 'a\r\nX-Evil: 1' })]),
  ],
  ['a pid that is no pid', encodeMigrationState([mine('vm-x', { pid: -4, accepted: randomUUID() })])],
  ['a start time that is no number', encodeMigrationState([mine('vm-x', { startTicks: '5' as never })])],
  ['an empty VM id', encodeMigrationState([mine('', { accepted: randomUUID() })])],
  ['a VM id too long', encodeMigrationState([mine('v'.repeat(129), { accepted: randomUUID() })])],
  [
    'more entries than the bound',
    encodeMigrationState(Array.from({ length: 5 }, (_, i) => mine(`vm-${i}`, { accepted: randomUUID() }))),
  ],
  [
    'more bytes than the bound, all of them blank',
    // Room for twice the requests sent that run at once: what an older build may have written.
    `{"version":1,"entries":[]}${' '.repeat(4 * 2048 + 2 * 2 * (80 * 1024 + 2 * 24) + 65)}`,
  ],
  ['a proto key', '{"version":1,"entries":[],"__proto__":{"polluted":true}}'],
  [
    'a request sent for another migration',
    encodeMigrationState([mine('vm-x', { pending: randomUUID(), sent: sentFor('vm-x', randomUUID()) })]),
  ],
  [
    'a request sent for another VM',
    encodeMigrationState([mine('vm-x', { pending: RUNNING, sent: sentFor('vm-y', RUNNING) })]),
  ],
  [
    'a request sent with a key of its own',
    encodeMigrationState([
      mine('vm-x', { pending: RUNNING, sent: { ...sentFor('vm-x', RUNNING), x: 1 } as never }),
    ]),
  ],
  [
    'a request sent with more pages than the bound',
    encodeMigrationState([
      mine('vm-x', { pending: RUNNING, sent: sentFor('vm-x', RUNNING, ['0x1000', '0x2000', '0x3000']) }),
    ]),
  ],
];

for (const [what, content] of HOSTILE) {
  test(`a file with ${what}: a warning, nothing remembered, the file set aside`, (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'migrations.json');
    writeFileSync(path, content);
    const loaded = loadMigrationState(path, 4, { count: 2, pages: 2 });
    assert.deepEqual(loaded.entries, []);
    assert.ok(loaded.warning?.includes(`; set aside as ${path}.bad;`), String(loaded.warning));
    assert.deepEqual(readdirSync(dir), ['migrations.json.bad']);
    assert.deepEqual(readFileSync(`${path}.bad`), Buffer.from(content));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
}

/** An entry of a migration whose hook was sent `sent`, running at a stop. */
const running = (vm: string, over: Partial<RememberedMigration> = {}) => {
  const id = randomUUID();
  return mine(vm, { ...over, pending: id, sent: sentFor(vm, id) });
};

test('more requests sent than run at once (an older build): the first kept, the others asked anew', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  const refused = { policyVersion: 'sha256:abc', migrationId: randomUUID() };
  const entries = [
    running('vm-0'),
    mine('vm-accepted', { accepted: randomUUID() }),
    running('vm-1'),
    running('vm-refused', { refused }),
    running('vm-3'),
  ];
  writeFileSync(path, encodeMigrationState(entries));
  const loaded = loadMigrationState(path, 8, { count: 2, pages: 2 });
  // The refusal outlives the request sent; what held nothing else is gone.
  assert.deepEqual(loaded.entries, [...entries.slice(0, 3), mine('vm-refused', { refused })]);
  assert.equal(loaded.stale, 0);
  assert.match(
    loaded.warning ?? '',
    /holds more requests sent than the 2 kept \(maxHooksInFlight\): 2 of its migrations .* new ids/,
  );
  assert.doesNotMatch(loaded.warning ?? '', /set aside/);
  assert.deepEqual(readdirSync(dir), ['migrations.json'], 'used, not set aside');
});

test('set aside over the one set aside before, and over a symlink there without following it', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  const target = join(dir, 'elsewhere');
  writeFileSync(target, 'not to be touched');
  for (const [i, before] of ['symlink', 'file'].entries()) {
    if (before === 'symlink') symlinkSync(target, `${path}.bad`);
    writeFileSync(path, `garbage ${i}`);
    const loaded = loadMigrationState(path, 4);
    assert.match(loaded.warning ?? '', /set aside as .*migrations\.json\.bad/);
    assert.equal(lstatSync(`${path}.bad`).isFile(), true, `over a ${before}`);
    assert.equal(readFileSync(`${path}.bad`, 'utf8'), `garbage ${i}`);
  }
  assert.equal(readFileSync(target, 'utf8'), 'not to be touched');
  assert.deepEqual(readdirSync(dir).sort(), ['elsewhere', 'migrations.json.bad']);
});

test('set aside where it cannot be: said, and the next write replaces the file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  mkdirSync(join(`${path}.bad`, 'full'), { recursive: true });
  writeFileSync(path, 'garbage');
  const loaded = loadMigrationState(path, 4);
  assert.match(loaded.warning ?? '', /cannot be set aside as .*migrations\.json\.bad \(E[A-Z]+\)/);
  await writeAtomic(path, encodeMigrationState([]));
  assert.equal(readFileSync(path, 'utf8'), encodeMigrationState([]));
});

test('not a regular file — a symlink, a directory, a FIFO — a warning, and the start does not block', (t) => {
  const dir = tempDir(t);
  const real = join(dir, 'real.json');
  writeFileSync(real, encodeMigrationState(ENTRIES));
  const link = join(dir, 'link.json');
  symlinkSync(real, link);
  const sub = join(dir, 'sub.json');
  mkdirSync(sub);
  const paths = [link, sub];
  const mkfifo = requireTool(t, 'mkfifo', 'coreutils');
  if (mkfifo) {
    const fifo = join(dir, 'fifo.json');
    execFileSync(mkfifo, [fifo]);
    paths.push(fifo);
  }
  for (const path of paths) {
    const loaded = loadMigrationState(path, 16);
    assert.deepEqual(loaded.entries, [], path);
    assert.ok(loaded.warning?.includes(path), `${path}: ${loaded.warning}`);
    assert.doesNotMatch(loaded.warning ?? '', /set aside as/, path);
  }
  // Each left where it was, none moved; the symlink still names what it named.
  assert.deepEqual(
    readdirSync(dir).sort(),
    ['link.json', 'real.json', 'sub.json', ...(mkfifo ? ['fifo.json'] : [])].sort(),
  );
  assert.equal(readlinkSync(link), real);
  assert.match(loadMigrationState(sub, 16).warning ?? '', /a directory is left where it is/);
  assert.match(
    loadMigrationState(link, 16).warning ?? '',
    /the next write replaces it, neither opened nor followed/,
  );
});

test('a symlink left in place: the next write replaces the link, and what it named is untouched', async (t) => {
  const dir = tempDir(t);
  const real = join(dir, 'real.json');
  writeFileSync(real, 'not to be touched');
  const path = join(dir, 'migrations.json');
  symlinkSync(real, path);
  assert.match(loadMigrationState(path, 16).warning ?? '', /neither opened nor followed/);
  await writeAtomic(path, encodeMigrationState([]));
  assert.equal(lstatSync(path).isFile(), true);
  assert.equal(readFileSync(real, 'utf8'), 'not to be touched');
});

test('a FIFO or a hard link where the temporary file goes: removed, never opened; the write is done', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  const tmp = `${path}.tmp`;
  const mkfifo = requireTool(t, 'mkfifo', 'coreutils');
  if (mkfifo) {
    execFileSync(mkfifo, [tmp]);
    // Were the write to wait for a reader, this one lets it go, so that the process can end.
    t.after(() => {
      try {
        closeSync(openSync(tmp, constants.O_RDONLY | constants.O_NONBLOCK));
      } catch {}
    });
    await within('the write past a FIFO', writeAtomic(path, encodeMigrationState([])));
    assert.equal(readFileSync(path, 'utf8'), encodeMigrationState([]));
  }
  const other = join(dir, 'other');
  writeFileSync(other, 'not to be touched');
  linkSync(other, tmp);
  await within('the write past a hard link', writeAtomic(path, encodeMigrationState(ENTRIES)));
  assert.equal(readFileSync(other, 'utf8'), 'not to be touched');
  assert.equal(readFileSync(path, 'utf8'), encodeMigrationState(ENTRIES));
  assert.deepEqual(readdirSync(dir).sort(), ['migrations.json', 'other']);
});

test('the writer: changes coalesced, one write at a time; close writes what it is given, last', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'migrations.json');
  let now: RememberedMigration[] = ENTRIES.slice(0, 1);
  const warnings: string[] = [];
  const w = new MigrationStateWriter(
    path,
    () => now,
    (m) => warnings.push(m),
    1,
  );
  for (let i = 0; i < 100; i++) w.changed();
  await until('the first write', () => w.written === 1);
  assert.deepEqual(loadMigrationState(path, 16).entries, ENTRIES.slice(0, 1));
  now = ENTRIES.slice(0, 2);
  w.changed();
  // Closed while that change waits (or is written): what close is given is the file's content.
  await w.close(ENTRIES.slice(2));
  assert.deepEqual(loadMigrationState(path, 16).entries, ENTRIES.slice(2));
  w.changed();
  assert.deepEqual(readdirSync(dir), ['migrations.json'], 'nothing written after close, no temporary file');
  assert.deepEqual(warnings, []);
});

test('a write that fails is a warning, told once until a write succeeds again', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'gone', 'migrations.json');
  const warnings: string[] = [];
  const w = new MigrationStateWriter(
    path,
    () => ENTRIES,
    (m) => warnings.push(m),
    1,
  );
  w.changed();
  await until('the warning', () => warnings.length === 1);
  w.changed();
  await w.close(ENTRIES);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0] as string, /cannot write .*migrations\.json/);
});

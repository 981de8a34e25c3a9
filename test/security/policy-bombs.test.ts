/**
 * Issue 12, items 3 and 13: policies built to hurt. Alias bombs, more than 100 aliases, nesting
 * too deep for a recursive walk: each SIGHUP reload fails cleanly — the daemon stays up and the
 * old policy keeps serving — and `policy check` reports it (exit 1, not an internal error). So does
 * a map of label keys aliased by many rules (each key a matcher, aliases expanded). A rate
 * threshold of 2^53−1 is refused by `policy check` and by a reload, instead of turning every later
 * decision into the safe default. A policy path that names a FIFO or a device is refused at once
 * (it held the reload, and every reload after it, until the load's 300 s timeout; a device was read
 * until the worker ran out of memory), and so is a policy file any local user could write.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { ACTION } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { CLI, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { until, writePolicy } from './fixtures.js';

const laughs = (): string => {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 10; i++) {
    const me = String.fromCharCode(97 + i);
    const prev = String.fromCharCode(96 + i);
    lines.push(`${me}: &${me} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `${lines.join('\n')}\nversion: 1\n`;
};

/** One anchored map of label keys given to 50 rules by aliases: 100,000 matchers from 54 KB. */
const labelBomb = (): string => {
  const keys = Array.from({ length: 2000 }, (_, i) => `k${i}: { exists: false }`).join(', ');
  const rules = Array.from(
    { length: 49 },
    (_, i) => `  - { name: r${i + 1}, match: { labels: *many }, action: { type: none } }`,
  );
  return [
    'version: 1',
    'name: label-bomb',
    'rules:',
    `  - { name: r0, match: { labels: &many { ${keys} } }, action: { type: none } }`,
    ...rules,
    'default: { action: { type: none } }',
    '',
  ].join('\n');
};

const BOMBS: Record<string, string> = {
  'billion laughs': laughs(),
  '150 aliases': `x: &x 1\ny: [${Array(150).fill('*x').join(',')}]\nversion: 1\n`,
  'deep block nesting': `a:\n${Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i + 1)}b:`).join('\n')} 1\n`,
  'deep flow nesting': `a: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`,
  'aliased label keys': labelBomb(),
  'rate threshold 2^53-1': [
    'version: 1',
    'name: huge-rate',
    'rules:',
    '  - name: r',
    '    match: { rate: { threshold: 9007199254740991 / 1m } }',
    '    action: { type: none }',
    'default:',
    '  action: { type: inject, abort: data }',
    '',
  ].join('\n'),
};

const RECORD_ONLY = ['rules: []', 'default:', '  action: { type: none }'];

let d: RunningDaemon;
let dir: string;
let policy: string;
let probe: PluginClient;

before(async () => {
  dir = mkdtempSync('/tmp/seawall-bombs-');
  policy = writePolicy(dir, 'record-only', RECORD_ONLY);
  d = await startDaemon({ args: ['--policy', policy], metrics: false });
  probe = new PluginClient({
    socket: d.socket,
    vmId: 'probe',
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    deadlineMs: 5000,
  });
  await probe.connect();
});

after(async () => {
  await probe?.close();
  await d?.kill();
  if (d) removeDir(d.dir);
  if (dir) removeDir(dir);
});

const sea = { type: 'sea' as const, vcpu: 0, kvmFlags: 1n, esr: 0x92000410n, gva: 0n, gpa: 0x3000n };

/** SIGHUP and the control socket's reload both fail; the daemon stays up and the old policy serves. */
async function reloadFails(): Promise<void> {
  const failuresBefore = d.output.filter((l) => l.startsWith('policy reload failed')).length;
  d.proc.kill('SIGHUP');
  await until(
    () => d.output.filter((l) => l.startsWith('policy reload failed')).length > failuresBefore,
    120_000,
    'the failed reload to be logged',
  );
  assert.equal(d.proc.exitCode, null, 'the daemon is still running');
  // The same through the control socket: the answer says the old policy was kept.
  const r = await controlRequest(d.controlSocket, 'reload', {}, { timeoutMs: 120_000 });
  assert.equal(r.ok, false);
  const out = await probe.handleExit(sea);
  assert.equal(out.source, 'daemon');
  assert.equal(out.verdict.action, ACTION.RESUME, 'the record-only policy still decides');
}

for (const [name, text] of Object.entries(BOMBS)) {
  test(`${name}: the reload fails, the daemon stays up, the old policy serves; policy check exits 1`, async () => {
    writeFileSync(policy, text);
    await reloadFails();
    const check = spawnSync(process.execPath, [CLI, 'policy', 'check', policy], { encoding: 'utf8' });
    assert.equal(check.status, 1, `policy check: ${check.stdout}${check.stderr}`);
    assert.match(
      check.stdout + check.stderr,
      /alias|nested|rate threshold is at most|Maximum call stack|label matchers|label keys; a rule/,
    );
  });
}

const SHAPES: Record<string, (path: string) => void> = {
  'a FIFO': (path) => execFileSync('mkfifo', [path]),
  'a symlink to /dev/zero': (path) => symlinkSync('/dev/zero', path),
  // Any local user could rewrite it to kill every VM at the next reload.
  'a file anyone may write': (path) => {
    writePolicy(dir, 'record-only', RECORD_ONLY);
    chmodSync(path, 0o666);
  },
};

for (const [name, make] of Object.entries(SHAPES)) {
  test(`the policy path made ${name}: the reload fails at once, the daemon stays up, the old policy serves`, async (t) => {
    unlinkSync(policy);
    make(policy);
    t.after(() => {
      unlinkSync(policy);
      writePolicy(dir, 'record-only', RECORD_ONLY);
    });
    await reloadFails();
    const check = spawnSync(process.execPath, [CLI, 'policy', 'check', policy], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    // `policy check` reads what it is given: the standard is the daemon's, which acts on it.
    if (name === 'a file anyone may write') {
      assert.equal(check.status, 0, check.stdout + check.stderr);
      assert.ok(
        d.output.some((l) =>
          /refusing to use .*record-only\.yaml: the policy is writable by everyone/.test(l),
        ),
        d.output.join('\n'),
      );
    } else {
      assert.equal(check.status, 1, `policy check: ${check.stdout}${check.stderr}`);
      assert.match(check.stdout + check.stderr, /not a regular file/);
    }
  });
}

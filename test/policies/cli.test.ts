/** `seawall policy check|test|explain`, run as an operator would: the compiled CLI in a child process. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runPolicyCli } from './fixtures.js';

const EXAMPLES = new URL('../../policies/examples/', import.meta.url).pathname;
const files = readdirSync(EXAMPLES).sort();
const policies = files
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'))
  .map((f) => join(EXAMPLES, f));
const tests = files.filter((f) => f.endsWith('.test.yaml')).map((f) => join(EXAMPLES, f));

test('every example policy passes check, and has a test file beside it that passes', () => {
  assert.deepEqual(
    policies.map((p) => p.replace(/\.yaml$/, '.test.yaml')),
    tests,
  );
  const c = runPolicyCli('check', ...policies);
  assert.equal(c.status, 0, c.stderr);
  assert.equal(c.stdout.trim().split('\n').length, policies.length);
  assert.match(c.stdout, /tiered\.yaml: ok: policy 'tiered', 4 rules \+ default, version [0-9a-f]{12}/);
  const t = runPolicyCli('test', ...tests);
  assert.equal(t.status, 0, t.stdout + t.stderr);
  assert.equal((t.stdout.match(/: PASS: /g) ?? []).length, tests.length);
});

test('check --config refuses a migrate hook the daemon config lacks, with its line, as the daemon would', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-check-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tiered = join(EXAMPLES, 'tiered.yaml');
  /** `policy check --config` with a config whose only hook is `hook`. */
  const checkWith = (hook: string) => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `actions:\n  hooks:\n    ${hook}: { type: exec, argv: [/bin/true] }\n`);
    return runPolicyCli('check', '--config', file, tiered);
  };
  const lacking = checkWith('other');
  assert.equal(lacking.status, 1, lacking.stdout);
  const line =
    readFileSync(tiered, 'utf8')
      .split('\n')
      .findIndex((l) => /hook: evacuate/.test(l)) + 1;
  assert.match(
    lacking.stderr,
    new RegExp(
      `tiered\\.yaml:${line}: rules\\[\\d+\\]\\.action\\.hook: hook 'evacuate' is not configured in the daemon \\(actions\\.hooks: other\\)`,
    ),
  );
  const having = checkWith('evacuate');
  assert.equal(having.status, 0, having.stderr);
  // Without --config the file alone is checked, as before.
  assert.equal(runPolicyCli('check', tiered).status, 0);
  const unreadable = runPolicyCli('check', '--config', join(dir, 'absent.yaml'), tiered);
  assert.equal(unreadable.status, 1);
  assert.match(unreadable.stderr, /config/);
});

test('check of a file that cannot be read names the file, not a line 0 of it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-check-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'missing.yaml');
  const r = runPolicyCli('check', missing);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `${missing}: cannot read ${missing}: ENOENT\n`);
});

test('a failing test file exits 1 with expected vs got per event', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const text = readFileSync(join(EXAMPLES, 'tiered.test.yaml'), 'utf8')
    .replace('policy: tiered.yaml', `policy: ${join(EXAMPLES, 'tiered.yaml')}`)
    .replace(
      'expect: { action: kill, rule: repeat-offender, grace: 30s }',
      'expect: { action: inject, rule: default }',
    );
  const file = join(dir, 'bad.test.yaml');
  writeFileSync(file, text);
  const r = runPolicyCli('test', file);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /FAIL: 1 of 12 events differ/);
  assert.match(r.stdout, /test 'three errors within ten minutes kill the VM', event 3 \(at 9m\)/);
  assert.match(r.stdout, /action\s+expected inject, got kill/);
  assert.match(r.stdout, /rule\s+expected default, got repeat-offender/);
});

test('policy test escapes the names, times and values it prints from the files', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Rule and test names that would clear the screen and forge a PASS line if printed as they are.
  writeFileSync(
    join(dir, 'evil.yaml'),
    [
      'version: 1',
      'name: evil',
      'rules:',
      // A rule name holds no control character (the schema refuses one), but a format one it may.
      '  - { name: "kill\\u202eevil.test.yaml: PASS", match: { kind: sea }, action: { type: kill } }',
      'default: { action: { type: none } }',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'evil.test.yaml'),
    [
      'policy: evil.yaml',
      'host: { abi: merged, ras: true, emulateAbort: false }',
      'tests:',
      '  - name: "t\\e]0;title\\a"',
      '    events:',
      '      - at: 0s',
      '        event: { kind: sea, vm: { id: v1, labels: {} }, vcpu: 0, esr: 0x92000410, gpa: 0x8000000 }',
      '        expect: { action: none, rule: "r\\u202e" }',
      '',
    ].join('\n'),
  );
  const r = runPolicyCli('test', join(dir, 'evil.test.yaml'));
  assert.equal(r.status, 1, r.stderr);
  // Nothing from the files reaches the terminal as a control or format character.
  assert.doesNotMatch(r.stdout.replaceAll('\n', ''), /[\p{Cc}\p{Cf}]/u);
  assert.match(r.stdout, /test 't\\x1b\]0;title\\x07', event 1/);
  assert.match(r.stdout, /by rule kill\\u202eevil\.test\.yaml: PASS\n/);
  assert.match(r.stdout, /rule\s+expected r\\u202e, got kill\\u202e/);
  assert.equal(r.stdout.trim().split('\n').length, 4, r.stdout);
});

test('explain: the sea_to_user event on a merged host, with the kvm_vcpu_events bytes', () => {
  const event = JSON.stringify({
    kind: 'sea',
    vm: { id: 'vm1', labels: { tier: 'silver' } },
    vcpu: 0,
    esr: '0x92000010',
    gva: '0x81234BAD',
    gpa: '0x8000000',
    time: '2026-01-01T00:00:00Z',
  });
  const r = runPolicyCli('explain', '--policy', join(EXAMPLES, 'tiered.yaml'), '--event', event);
  assert.equal(r.status, 0, r.stderr);
  const x = JSON.parse(r.stdout);
  assert.equal(x.matched.rule, 'default');
  assert.equal(x.vcpuEvents.hex, `000001${'0'.repeat(122)}`);
  assert.equal(
    x.decision.downgrade.detail,
    'the merged ABI cannot carry a chosen ISS (KVM builds the ESR itself)',
  );
  assert.deepEqual(
    [x.decision.downgrade.from, x.decision.downgrade.to, x.decision.downgrade.reason],
    ['dabt_esr', 'dabt', 'merged_abi_no_esr'],
  );
  assert.deepEqual(
    x.notMatched.map((m: { rule: string; matcher: string }) => `${m.rule}:${m.matcher}`),
    [
      'repeat-offender:rate',
      'gold-migrate:labels.tier',
      'instruction-fetch:abort',
      'sigbus-record-only:kind',
    ],
  );
  const ext = runPolicyCli(
    'explain',
    '--policy',
    join(EXAMPLES, 'tiered.yaml'),
    '--event',
    event,
    '--host-abi',
    'ext-abt-esr',
  );
  assert.equal(JSON.parse(ext.stdout).vcpuEvents.hex.slice(0, 10), '0000010001');
});

test('explain refuses a bad event with its path, as a usage error (exit 2)', () => {
  const r = runPolicyCli(
    'explain',
    '--policy',
    join(EXAMPLES, 'default.yaml'),
    '--event',
    '{"kind":"sea","vm":{"id":"v"},"vcpu":0}',
  );
  // The event is part of the command line: a malformed one is a usage error, like any bad value.
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--event <json>' argument .* is invalid\. esr: a sea event carries an esr/);
  assert.equal(runPolicyCli('explain', '--event', '{}').status, 2);
  assert.equal(runPolicyCli('frobnicate').status, 2);
});

/**
 * A reload's rules reach the event loop and are compiled a slice per task (daemon/policy-loader.ts),
 * so that the verdicts of running VMs go on between slices instead of waiting for the whole policy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { deserialize } from 'node:v8';
import { createPolicyLoader } from '../../daemon/policy-loader.js';
import {
  MAX_REPORTED_ISSUES,
  PolicyWorker,
  RULES_PER_SLICE,
  sliceRules,
  TERMS_PER_SLICE,
} from '../../daemon/policy-worker.js';
import {
  labelTerms,
  matchTerms,
  POLICY_LIMITS,
  type PolicyRule,
  PolicyState,
  parsePolicy,
} from '../../policies/index.js';
import { MERGED, seaEvent } from '../policies/fixtures.js';

/** The real worker, noting when its answer reached the event loop. */
class WatchedWorker extends PolicyWorker {
  answered = false;
  override async load(path: string) {
    const r = await super.load(path);
    this.answered = true;
    return r;
  }
}

test('a policy of the most rules allowed is compiled a slice per task, and its last rule decides', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const n = POLICY_LIMITS.maxRules;
  const lines = ['version: 1', 'name: many', 'rules:'];
  for (let i = 0; i < n; i++)
    lines.push(
      `  - { name: r${i}, match: { labels: { tenant: t${i} }, kind: sea }, action: ${i === n - 1 ? '{ type: kill }' : '{ type: none }'} }`,
    );
  lines.push('default: { action: { type: inject, abort: data } }', '');
  const file = join(dir, 'many.yaml');
  writeFileSync(file, lines.join('\n'));

  const worker = new WatchedWorker();
  t.after(() => worker.close());
  // Other work of the event loop (a verdict, a socket read): counted once the rules have arrived.
  let turns = 0;
  let loading = true;
  const turn = () => {
    if (worker.answered) turns++;
    if (loading) setImmediate(turn);
  };
  setImmediate(turn);
  const r = await createPolicyLoader(
    new PolicyState(),
    worker,
  )(file).finally(() => {
    loading = false;
  });
  assert.ok(r.ok, r.ok ? '' : r.issues.join('\n'));
  if (!r.ok) return;
  const slices = Math.ceil(n / RULES_PER_SLICE);
  // Compiled in one task, the rules would leave other work a turn or two in all.
  assert.ok(turns >= slices, `${turns} turns of the event loop while ${slices} slices were compiled`);
  const decide = (tenant: string) =>
    r.provider.decide(seaEvent({ vm: { id: 'a', labels: { tenant } } }), MERGED);
  assert.equal(decide(`t${n - 1}`).rule, `r${n - 1}`);
  assert.equal(decide(`t${n - 1}`).action, 'kill');
  assert.equal(decide('t0').action, 'none');
  assert.equal(decide('nobody').rule, 'default');
});

test('rules of many label keys come in slices of at most TERMS_PER_SLICE keys and values', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const perRule = POLICY_LIMITS.maxLabelsPerRule;
  const n = 40;
  const keys = Array.from({ length: perRule - 1 }, (_, i) => `k${i}: { exists: false }`).join(', ');
  const lines = ['version: 1', 'name: labelled', 'rules:'];
  for (let i = 0; i < n; i++)
    lines.push(`  - { name: r${i}, match: { labels: { tenant: t${i}, ${keys} } }, action: { type: kill } }`);
  lines.push('default: { action: { type: none } }', '');
  const file = join(dir, 'labelled.yaml');
  writeFileSync(file, lines.join('\n'));

  const worker = new PolicyWorker();
  t.after(() => worker.close());
  const loaded = await worker.load(file);
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.join('\n'));
  if (!loaded.ok) return;
  const slices = loaded.rules.map((s) => deserialize(s) as PolicyRule[]);
  assert.deepEqual(
    slices.flat().map((r) => r.name),
    Array.from({ length: n }, (_, i) => `r${i}`),
  );
  // Under RULES_PER_SLICE rules, but n × perRule label keys: one task's worth would be all of them.
  assert.ok(n < RULES_PER_SLICE);
  assert.ok(slices.length >= Math.ceil((n * perRule) / TERMS_PER_SLICE), `${slices.length} slices`);
  for (const slice of slices) {
    const terms = slice.reduce((sum, r) => sum + labelTerms(r).keys + labelTerms(r).values, 0);
    assert.ok(terms <= TERMS_PER_SLICE, `a slice of ${slice.length} rules carries ${terms} label terms`);
  }

  const r = await createPolicyLoader(new PolicyState(), worker)(file);
  assert.ok(r.ok, r.ok ? '' : r.issues.join('\n'));
  if (!r.ok) return;
  const decide = (tenant: string) =>
    r.provider.decide(seaEvent({ vm: { id: 'a', labels: { tenant } } }), MERGED).rule;
  assert.equal(decide(`t${n - 1}`), `r${n - 1}`);
  assert.equal(decide('nobody'), 'default');
});

test('a policy naming a migration hook the daemon does not have is refused, at the line of each use', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'migrate.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'name: migrate',
      'rules:',
      '  - { name: gold, match: { kind: sea }, action: { type: migrate, hook: orchestrator, meanwhile: none, onFailure: { type: kill } } }',
      'default: { action: { type: inject, abort: data } }',
      '',
    ].join('\n'),
  );
  const worker = new PolicyWorker();
  t.after(() => worker.close());
  const misspelt = await createPolicyLoader(new PolicyState(), worker, ['orch'])(file);
  assert.equal(misspelt.ok, false);
  assert.deepEqual(misspelt.ok ? [] : misspelt.issues, [
    `${file}:4: rules[0].action.hook: hook 'orchestrator' is not configured in the daemon (actions.hooks: orch) [unknown-hook]`,
  ]);
  const none = await createPolicyLoader(new PolicyState(), worker)(file);
  assert.match(none.ok ? '' : (none.issues[0] ?? ''), /\(actions\.hooks: none\) \[unknown-hook\]$/);
  const configured = await createPolicyLoader(new PolicyState(), worker, ['orch', 'orchestrator'])(file);
  assert.equal(configured.ok, true, configured.ok ? '' : configured.issues.join('\n'));
});

/** `lines` as a policy file in a temp dir, loaded by a real worker for a daemon with no hooks. */
async function loadLines(t: TestContext, name: string, lines: readonly string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n'));
  const worker = new PolicyWorker();
  t.after(() => worker.close());
  return { file, r: await createPolicyLoader(new PolicyState(), worker)(file) };
}

test('a policy naming an unconfigured hook in many rules reports the first MAX_REPORTED_ISSUES uses', async (t) => {
  const n = MAX_REPORTED_ISSUES + 50;
  const lines = ['version: 1', 'name: migrate', 'rules:'];
  for (let i = 0; i < n; i++)
    lines.push(
      `  - { name: r${i}, match: { kind: sea }, action: { type: migrate, hook: gone, meanwhile: none, onFailure: { type: kill } } }`,
    );
  lines.push('default: { action: { type: none } }', '');
  const { file, r } = await loadLines(t, 'hooks.yaml', lines);
  const issues = r.ok ? [] : r.issues;
  assert.equal(issues.length, MAX_REPORTED_ISSUES + 1);
  assert.match(issues[0] ?? '', /: rules\[0\]\.action\.hook: hook 'gone' is not configured/);
  assert.equal(issues.at(-1), `… and 50 more errors: seawall policy check ${file} lists every one`);
});

test('the daemon refuses a policy over the GPA range limit as policy check does, aliases expanded', async (t) => {
  // One anchored list aliased by 100 rules: a small file, 100 × its ranges once expanded.
  const n = POLICY_LIMITS.maxGpaRanges / 100 + 1;
  const ranges = Array.from({ length: n }, (_, i) => `{ from: ${i * 0x2000}, to: ${i * 0x2000 + 0xfff} }`);
  const lines = ['version: 1', 'name: gpa', 'rules:'];
  lines.push(`  - { name: r0, match: { gpa: &g [${ranges.join(', ')}] }, action: { type: kill } }`);
  for (let i = 1; i < 100; i++) lines.push(`  - { name: r${i}, match: { gpa: *g }, action: { type: kill } }`);
  lines.push('default: { action: { type: none } }', '');
  const { file, r } = await loadLines(t, 'gpa.yaml', lines);
  assert.deepEqual(r.ok ? [] : r.issues, [
    `${file}:3: rules: ${100 * n} GPA ranges (over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxGpaRanges} (maxGpaRanges) [policy-limit]`,
  ]);
});

test('long vcpu lists, aliased by many rules, are sliced by their values, not only by rule count', () => {
  // 20 rules aliasing one list of 3,000 distinct vCPUs, and 100 of 400 terms each: 100,000 values.
  const vcpus = (n: number) => Array.from({ length: n }, (_, i) => i).join(', ');
  const lines = ['version: 1', 'name: vcpus', 'rules:'];
  lines.push(`  - { name: a0, match: { vcpu: &v [${vcpus(3000)}] }, action: { type: kill } }`);
  for (let i = 1; i < 20; i++) lines.push(`  - { name: a${i}, match: { vcpu: *v }, action: { type: kill } }`);
  for (let i = 0; i < 100; i++)
    lines.push(`  - { name: b${i}, match: { vcpu: [${vcpus(399)}], kind: sea }, action: { type: none } }`);
  lines.push('default: { action: { type: none } }', '');
  const r = parsePolicy(lines.join('\n'), 'vcpus.yaml');
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues.slice(0, 3)));
  if (!r.ok) return;
  const slices = sliceRules(r.policy.rules);
  assert.deepEqual(
    slices.flat().map((rule) => rule.name),
    r.policy.rules.map((rule) => rule.name),
  );
  for (const slice of slices) {
    const terms = slice.reduce((sum, rule) => sum + matchTerms(rule), 0);
    assert.ok(
      slice.length === 1 || terms <= TERMS_PER_SLICE,
      `a slice of ${slice.length} rules carries ${terms} terms`,
    );
  }
  // Each aliased rule alone is over the bound: a slice of its own. Two 400-term rules fit in one.
  assert.equal(matchTerms(r.policy.rules[0]), 3000);
  assert.equal(matchTerms(r.policy.rules[20]), 400);
  assert.equal(slices.length, 20 + 50);
});

/** Loading: every problem of a file reported at once, with its YAML path and line. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  compilePolicy,
  loadPolicyFile,
  MAX_UNSUPPORTED_OPTIONS,
  POLICY_LIMITS,
  type PolicyRule,
  parsePolicy,
  policyEventFromJson,
  readYamlFile,
} from '../../policies/index.js';
import { runPolicyCli } from './fixtures.js';

const THREE_ERRORS = `version: 1
name: broken
rules:
  - name: a
    match:
      kind: sea
      colour: red
    action: { type: kill }
  - name: b
    action:
      type: inject
      abort: data
      iss: 0x2000000
  - name: a
    action: { type: none }
default:
  action: { type: none }
`;

test('three distinct errors are all reported, each with its path, line and code', () => {
  const r = parsePolicy(THREE_ERRORS, 'broken.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  const got = r.issues.map((i) => [i.code, i.path, i.line]);
  assert.deepEqual(got, [
    ['unknown-key', 'rules[0].match.colour', 7],
    ['iss-invalid', 'rules[1].action.iss', 13],
    ['duplicate-rule', 'rules[2].name', 14],
  ]);
});

test('YAML syntax errors carry their line; nothing else is reported from a broken document', () => {
  const r = parsePolicy('version: 1\nname: x\nrules: [\n  - a\n', 'x.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.ok(r.issues.length >= 1);
  assert.ok(r.issues.every((i) => i.code === 'yaml-syntax' && i.line > 0));
});

test('a key given twice in one map is refused at its line, in block and flow maps at any depth', () => {
  const lines = [
    'version: 1',
    'name: x',
    'rules:',
    '  - name: a',
    '    match: { labels: { tier: gold, zone: a, tier: silver } }', // line 5
    '    action: { type: kill }',
    '  - name: b',
    '    match:',
    '      kind: sea',
    '      kind: nisv', // line 10
    '    action: { type: none }',
    'name: y', // line 12
    'default: { action: { type: none } }',
  ];
  const r = parsePolicy(lines.join('\n'), 'dup.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.issues.map((i) => [i.code, i.line, i.message]),
    [5, 10, 12].map((line) => ['yaml-syntax', line, 'Map keys must be unique']),
  );
  // The same key in different maps is no duplicate.
  const distinct = [
    ...lines.slice(0, 4),
    '    match: { labels: { tier: gold, zone: a } }',
    ...lines.slice(5, 9),
  ];
  const ok = parsePolicy([...distinct, ...lines.slice(10, 11), ...lines.slice(12)].join('\n'), 'ok.yaml');
  assert.ok(ok.ok, ok.ok ? '' : JSON.stringify(ok.issues));
});

/** A key given through an alias, and one given as `1` and as `"1"`: both name a key twice. */
const ALIAS_KEY = [
  'version: 1',
  'name: dup-alias',
  'description: &k default',
  'rules:',
  '  - name: gold',
  '    match:',
  '      labels: { tier: gold, 1: first, "1": second }', // line 7
  '    action: { type: inject, abort: data }',
  'default:',
  '  action: { type: inject, abort: data }',
  '*k :', // line 11
  '  action: { type: kill, grace: 0s }',
].join('\n');

test('an alias key, and keys that are one JS key by value (1 and "1"), are refused at their lines', () => {
  // Before, `*k` replaced the default rule behind check's back and `"1"` silently won over `1`.
  const r = parsePolicy(ALIAS_KEY, 'dup-alias.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.issues.map((i) => [i.code, i.line, i.message]),
    [
      ['yaml-syntax', 7, 'Map keys must be unique'],
      ['yaml-syntax', 11, 'Map keys must not be aliases'],
    ],
  );
  // An alias is still fine as a value.
  const asValue = parsePolicy(
    'version: 1\ndescription: &n x\nname: *n\ndefault: { action: { type: none } }\n',
    'v.yaml',
  );
  assert.ok(asValue.ok, asValue.ok ? '' : JSON.stringify(asValue.issues));
  const keyed = (key: string) =>
    parsePolicy(`version: 1\nname: x\ndefault: { action: { type: none } }\n${key}: 1\n`, 'k.yaml');
  for (const key of ['[a]', '{ a: 1 }', '? [b]\n']) {
    const k = keyed(key);
    assert.equal(k.ok, false, key);
    if (!k.ok)
      assert.deepEqual(
        k.issues.map((i) => [i.line, i.message]),
        [[4, 'Map keys must be scalars']],
        key,
      );
  }
  for (const [a, b] of [
    ['true', '"true"'],
    ['0x10', '16'],
    ['~', '""'],
  ]) {
    const dup = parsePolicy(
      `version: 1\nname: x\nrules:\n  - name: a\n    match: { labels: { ${a}: p, ${b}: q } }\n    action: { type: none }\ndefault: { action: { type: none } }\n`,
      'd.yaml',
    );
    assert.equal(dup.ok, false, `${a} ${b}`);
    if (!dup.ok)
      assert.deepEqual(
        dup.issues.map((i) => i.message),
        ['Map keys must be unique'],
        `${a} ${b}`,
      );
  }
});

test('policy check exits 1 on a default rule replaced through an alias key', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dup-alias.yaml');
  writeFileSync(file, ALIAS_KEY);
  const r = runPolicyCli('check', file);
  assert.equal(r.status, 1, r.stdout);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `${file}:7: (document): Map keys must be unique`,
    `${file}:11: (document): Map keys must not be aliases`,
  ]);
});

test('semantic errors: set without fsc 0x10, GPA range reversed, bad rate, bad duration, unknown hook', () => {
  const r = parsePolicy(
    `version: 1
name: x
hooks: [evacuate]
rules:
  - name: a
    match:
      gpa: [{ from: 0x2000, to: 0x1000 }]
      rate: { threshold: "3 per 10m" }
    action: { type: inject, abort: data, set: uer, fsc: 0x18 }
  - name: b
    action: { type: migrate, hook: elsewhere, meanwhile: none, onFailure: { type: kill, grace: 5 minutes } }
  - name: c
    action: { type: inject, abort: instruction, wnr: true }
    onUnsupported: emulate
default:
  action: { type: none }
`,
    'x.yaml',
  );
  assert.equal(r.ok, false);
  if (r.ok) return;
  const byPath = new Map(r.issues.map((i) => [i.path, i]));
  assert.equal(byPath.get('rules[0].match.gpa[0].to')?.code, 'gpa-range');
  assert.equal(byPath.get('rules[0].match.rate.threshold')?.code, 'rate-syntax');
  assert.equal(byPath.get('rules[0].action.set')?.code, 'iss-invalid');
  assert.equal(byPath.get('rules[1].action.hook')?.code, 'unknown-hook');
  assert.equal(byPath.get('rules[1].action.onFailure.grace')?.code, 'duration-syntax');
  assert.equal(byPath.get('rules[2].action.wnr')?.code, 'iss-invalid');
  assert.equal(byPath.get('rules[2].onUnsupported')?.code, 'unsupported-fallback');
  assert.equal(byPath.get('rules[0].match.gpa[0].to')?.line, 7);
  assert.equal(byPath.get('rules[2].action.wnr')?.line, 13);
});

test('a rule name the metrics could not label is refused: longer than 128 characters, or a control character', () => {
  const long = 'k'.repeat(129);
  const r = parsePolicy(
    `version: 1
name: x
rules:
  - name: "${'k'.repeat(128)}"
    action: { type: none }
  - name: "${long}"
    action: { type: none }
  - name: "bell\\u0007rule"
    action: { type: none }
default:
  action: { type: none }
`,
    'x.yaml',
  );
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.issues.map((i) => [i.code, i.path, i.line]),
    [
      ['schema', 'rules[1].name', 6],
      ['schema', 'rules[2].name', 8],
    ],
    '128 characters are fine',
  );
  assert.match(
    r.issues[0]?.message ?? '',
    /is 129 characters long, more than 128; a rule name is 1–128 characters/,
  );
  assert.match(r.issues[1]?.message ?? '', /"bell\\u0007rule" holds a control character \(U\+0007 at 4\)/);
});

test('missing mandatory keys and a wrong version are schema errors', () => {
  const r = parsePolicy('version: 2\nname: x\n', 'x.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(r.issues.map((i) => i.path).sort(), ['default', 'version']);
});

test('GPAs above 2^53 keep every bit, as YAML hex ints and as strings', () => {
  const r = parsePolicy(
    `version: 1
name: big
rules:
  - name: high
    match: { gpa: [{ from: 0xfffffffffffff000, to: "0xffffffffffffffff" }] }
    action: { type: none }
default: { action: { type: none } }
`,
    'big.yaml',
  );
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.policy.rules[0]?.match.gpa?.[0]?.from, 0xfffffffffffff000n);
  assert.equal(r.policy.rules[0]?.match.gpa?.[0]?.to, 0xffffffffffffffffn);
});

test('an unreadable file is one issue, not a throw', async () => {
  const r = await loadPolicyFile('/nonexistent/policy.yaml');
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.issues[0]?.code, 'unreadable');
});

test('only a regular file within the size bound is read: a FIFO, a device or a directory is refused at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-shapes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'policy.fifo');
  execFileSync('mkfifo', [fifo]);
  // Each of these used to be read without end: the FIFO until a writer came, /dev/zero until the
  // string could grow no more.
  const cases: Array<[string, RegExp]> = [
    [fifo, /not a regular file \(a FIFO\)/],
    ['/dev/zero', /not a regular file \(a device\)/],
    [dir, /not a regular file \(a directory\)/],
    ['/nonexistent/policy.yaml', /cannot read \/nonexistent\/policy\.yaml: ENOENT$/],
  ];
  for (const [path, says] of cases) {
    const r = await loadPolicyFile(path);
    assert.equal(r.ok, false, path);
    if (!r.ok) {
      assert.equal(r.issues.length, 1);
      assert.equal(r.issues[0]?.code, 'unreadable');
      assert.match(r.issues[0]?.message ?? '', says);
    }
  }
  // The bound, and a symlink to a regular file, which is read like the file.
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, 'x'.repeat(101));
  assert.deepEqual(readYamlFile(file, 100), {
    ok: false,
    issue: {
      code: 'unreadable',
      path: '',
      line: 0,
      message: `cannot read ${file}: 101 bytes is over the 100-byte limit`,
    },
  });
  assert.deepEqual(readYamlFile(file, 101), { ok: true, text: 'x'.repeat(101) });
  symlinkSync(file, join(dir, 'link.yaml'));
  assert.deepEqual(readYamlFile(join(dir, 'link.yaml'), 101), { ok: true, text: 'x'.repeat(101) });
});

test('policy check: exit 1 listing every error as file:line: path: message', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'broken.yaml');
  writeFileSync(file, THREE_ERRORS);
  const r = runPolicyCli('check', file);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.split(': ').slice(0, 2).join(': ')),
    [`${file}:7: rules[0].match.colour`, `${file}:13: rules[1].action.iss`, `${file}:14: rules[2].name`],
  );
});

test('a kill grace longer than a timer can wait, and a __proto__ label, are refused', () => {
  const r = parsePolicy(
    `version: 1
name: bounds
rules:
  - name: proto
    match: { labels: { __proto__: gold } }
    action: { type: kill, grace: 25d }
default:
  action: { type: kill, grace: 24d }
`,
    'bounds.yaml',
  );
  assert.ok(!r.ok);
  if (r.ok) return;
  const byPath = new Map(r.issues.map((i) => [i.path, i]));
  // Node fires a longer timer after 1 ms: a 25-day grace was an immediate SIGKILL.
  assert.match(byPath.get('rules[0].action.grace')?.message ?? '', /longer than a timer can wait/);
  // zod left the key out silently, and the rule matched every VM.
  assert.match(byPath.get('rules[0].match.labels')?.message ?? '', /'__proto__' cannot be a label name/);
  assert.equal(r.issues.length, 2, '24d is within the bound');
  assert.throws(
    () => policyEventFromJson({ kind: 'sea', vm: { id: 'v', labels: JSON.parse('{"__proto__": "gold"}') } }),
    /'__proto__' cannot be a label name/,
  );
});

test('a policy holds at most 10,000 rules and 100,000 label values; at the bounds it loads', () => {
  const doc = (rules: number, values: number) => {
    const list = Array.from({ length: values }, (_, i) => `t${i}`).join(', ');
    const lines = ['version: 1', 'name: big', 'rules:'];
    if (values > 0)
      lines.push(
        `  - { name: listed, match: { labels: { tenant: { in: [${list}] } } }, action: { type: kill } }`,
      );
    for (let i = values > 0 ? 1 : 0; i < rules; i++)
      lines.push(`  - { name: r${i}, match: { labels: { tenant: x${i} } }, action: { type: none } }`);
    lines.push('default: { action: { type: inject, abort: data } }', '');
    return lines.join('\n');
  };
  const atBounds = parsePolicy(doc(POLICY_LIMITS.maxRules, POLICY_LIMITS.maxLabelValues), 'at.yaml');
  assert.ok(atBounds.ok, atBounds.ok ? '' : JSON.stringify(atBounds.issues.slice(0, 3)));
  for (const [rules, values, says] of [
    [POLICY_LIMITS.maxRules + 1, 0, '10001 rules; a policy holds at most 10000'],
    [2, POLICY_LIMITS.maxLabelValues + 1, '100001 label values'],
  ] as const) {
    const r = parsePolicy(doc(rules, values), 'over.yaml');
    assert.equal(r.ok, false);
    if (r.ok) continue;
    assert.deepEqual(
      r.issues.map((i) => [i.code, i.path]),
      [['policy-limit', 'rules']],
    );
    assert.match(r.issues[0]?.message ?? '', new RegExp(says));
  }
});

/** `r` failed with one issue: the policy-limit `message` on `rules`. */
function assertOneLimitIssue(r: ReturnType<typeof parsePolicy>, message: string): void {
  assert.deepEqual(r.ok ? [] : r.issues.map((i) => [i.code, i.path, i.message]), [
    ['policy-limit', 'rules', message],
  ]);
}

test('label keys are bounded per rule and over all rules, counted with aliases expanded', () => {
  const keys = (n: number, from = 0) =>
    Array.from({ length: n }, (_, i) => `k${from + i}: { exists: false }`).join(', ');
  const doc = (rules: string[]) =>
    ['version: 1', 'name: labels', 'rules:', ...rules, 'default: { action: { type: none } }', ''].join('\n');
  const perRule = POLICY_LIMITS.maxLabelsPerRule;
  // One anchored map of label keys, aliased by every other rule: written once, matched by each.
  const aliased = (n: number, keyCount: number) => [
    `  - { name: r0, match: { labels: &many { ${keys(keyCount)} } }, action: { type: kill } }`,
    ...Array.from(
      { length: n - 1 },
      (_, i) => `  - { name: r${i + 1}, match: { labels: *many }, action: { type: kill } }`,
    ),
  ];
  const atBound = parsePolicy(doc(aliased(50, perRule)), 'at.yaml');
  assert.ok(atBound.ok, atBound.ok ? '' : JSON.stringify(atBound.issues.slice(0, 3)));
  const overPerRule = parsePolicy(doc(aliased(50, perRule + 1)), 'rule.yaml');
  assert.equal(overPerRule.ok, false);
  if (overPerRule.ok) return;
  assert.equal(overPerRule.issues.length, 50, 'each rule the alias gives the map to is over');
  assert.deepEqual(overPerRule.issues[49], {
    code: 'policy-limit',
    path: 'rules[49].match.labels',
    line: 53,
    message: `${perRule + 1} label keys; a rule matches at most ${perRule}`,
  });

  // Over all rules: 99 aliases of a full map and rules of their own, one key past the bound.
  const total = POLICY_LIMITS.maxLabelMatchers;
  const own = Math.ceil((total + 1 - 100 * perRule) / perRule);
  const rules = [
    ...aliased(100, perRule),
    ...Array.from({ length: own }, (_, i) => {
      const n = i === own - 1 ? total + 1 - 100 * perRule - (own - 1) * perRule : perRule;
      return `  - { name: own${i}, match: { labels: { ${keys(n)} } }, action: { type: none } }`;
    }),
  ];
  assertOneLimitIssue(
    parsePolicy(doc(rules), 'total.yaml'),
    `${total + 1} label matchers (label keys over all rules, aliases expanded); a policy holds at most ${total}`,
  );
});

/** 100 rules sharing one anchored list of `n` GPA ranges: 100 × n ranges once the aliases expand. */
function aliasedGpaPolicy(n: number, reversed = false): string {
  const ranges = Array.from({ length: n }, (_, i) => `{ from: ${i * 0x2000}, to: ${i * 0x2000 + 0xfff} }`);
  if (reversed) ranges[0] = '{ from: 2, to: 1 }';
  const lines = ['version: 1', 'name: gpa', 'rules:'];
  lines.push(`  - { name: r0, match: { gpa: &g [${ranges.join(', ')}] }, action: { type: kill } }`);
  for (let i = 1; i < 100; i++) lines.push(`  - { name: r${i}, match: { gpa: *g }, action: { type: kill } }`);
  lines.push('default: { action: { type: none } }', '');
  return lines.join('\n');
}

test('GPA ranges are bounded over all rules, counted with aliases expanded', () => {
  const perRule = POLICY_LIMITS.maxGpaRanges / 100;
  const atBound = parsePolicy(aliasedGpaPolicy(perRule), 'at.yaml');
  assert.ok(atBound.ok, atBound.ok ? '' : JSON.stringify(atBound.issues.slice(0, 3)));
  // A reversed range in the list: validated, it would be an issue in each of the 100 rules.
  // The one issue: the document over the limit is not validated range by range.
  assertOneLimitIssue(
    parsePolicy(aliasedGpaPolicy(perRule + 1, true), 'over.yaml'),
    `${100 * (perRule + 1)} GPA ranges (over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxGpaRanges} (maxGpaRanges)`,
  );
  // A document built in code is held to the same limit when compiled.
  if (!atBound.ok) return;
  const extra = { name: 'extra', match: { gpa: [{ from: 0n, to: 0n }] }, action: { type: 'none' as const } };
  const doc = { ...atBound.policy, rules: [...atBound.policy.rules, { ...extra } as PolicyRule] };
  assert.throws(() => compilePolicy(doc), /200001 GPA ranges/);
});

test('policy check refuses a policy over the GPA range limit, naming the limit', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gpa.yaml');
  writeFileSync(file, aliasedGpaPolicy(POLICY_LIMITS.maxGpaRanges / 100 + 1));
  const r = runPolicyCli('check', file);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(
    r.stderr,
    `${file}:3: rules: 200100 GPA ranges (over all rules, aliases expanded); a policy holds at most 200000 (maxGpaRanges)\n`,
  );
});

test('listed matchers keep each value once, aliases expanded, and onUnsupported lists are bounded', () => {
  // 100 rules aliasing one list of vCPU indexes, all the same: one value each.
  const doc = (n: number) => {
    const sevens = Array.from({ length: n }, () => '7').join(', ');
    const lines = ['version: 1', 'name: dup', 'rules:'];
    lines.push(`  - { name: r0, match: { vcpu: &v [${sevens}] }, action: { type: kill } }`);
    for (let i = 1; i < 100; i++)
      lines.push(`  - { name: r${i}, match: { vcpu: *v }, action: { type: kill } }`);
    lines.push('default: { action: { type: none } }', '');
    return lines.join('\n');
  };
  // The bound counts the values as written: 100 × n.
  const n = POLICY_LIMITS.maxListValues / 100;
  const r = parsePolicy(doc(n), 'dup.yaml');
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues.slice(0, 3)));
  if (!r.ok) return;
  assert.ok(r.policy.rules.every((rule) => rule.match.vcpu?.length === 1 && rule.match.vcpu[0] === 7));
  const severity = parsePolicy(
    'version: 1\nname: s\nrules:\n  - { name: a, match: { severity: [uer, uer, uc, uer], kind: [sea, sea] }, action: { type: kill } }\ndefault: { action: { type: none } }\n',
    's.yaml',
  );
  assert.deepEqual(severity.ok ? severity.policy.rules[0]?.match.severity : severity.issues, ['uer', 'uc']);
  assert.deepEqual(severity.ok ? severity.policy.rules[0]?.match.kind : [], ['sea']);

  assertOneLimitIssue(
    parsePolicy(doc(n + 1), 'over.yaml'),
    `${POLICY_LIMITS.maxListValues + 100} values in kind, abort, fsc, severity and vcpu lists (over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxListValues} (maxListValues)`,
  );

  const options = (k: number) =>
    `version: 1\nname: u\nrules: []\ndefault:\n  action: { type: inject, abort: instruction }\n  onUnsupported: [${Array(k).fill('downgrade').join(', ')}]\n`;
  assert.ok(parsePolicy(options(MAX_UNSUPPORTED_OPTIONS), 'at.yaml').ok);
  const over = parsePolicy(options(MAX_UNSUPPORTED_OPTIONS + 1), 'over.yaml');
  assert.deepEqual(over.ok ? [] : over.issues.map((i) => [i.code, i.path, i.line]), [
    ['schema', 'default.onUnsupported', 6],
  ]);
});

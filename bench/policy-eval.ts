/**
 * Policy evaluation cost: ns per `decide` (match + state update) for 10, 100 and 1,000 rules,
 * for a label-indexed policy (one rule per tenant) and for a non-indexable one (one GPA range
 * per rule), with the built-in 1-rule policy as the baseline measured in the same run.
 *
 *   node --import tsx bench/policy-eval.ts [--json]
 */
import {
  builtinPolicy,
  type CompiledPolicy,
  compilePolicy,
  type HostCapabilities,
  type PolicyEvent,
  PolicyState,
  parsePolicy,
  policyEventFromJson,
} from '../policies/index.js';

const HOST: HostCapabilities = { abi: 'merged', ras: true, emulateAbort: false };
const SIZES = [10, 100, 1000];
const EVENTS = 4096;
const PAGE = 0x1000;

function compile(yaml: string): CompiledPolicy {
  const r = parsePolicy(yaml, '<bench>');
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return compilePolicy(r.policy, { state: new PolicyState() });
}

const header = (name: string) => `version: 1\nname: ${name}\nrules:\n`;
const footer = 'default: { action: { type: inject, abort: data } }\n';

/** One rule per tenant: `labels: {tenant: tN}`; the index buckets them by tenant. */
function labelPolicy(n: number): string {
  let y = header(`labels-${n}`);
  for (let i = 0; i < n; i++) {
    y += `  - name: t${i}\n    match: { kind: [sea, nisv], labels: { tenant: t${i} }, severity: [uer, ueo] }\n`;
    y += `    action: { type: kill, grace: 5s }\n`;
  }
  return y + footer;
}

/** One GPA range per rule: nothing to index, every rule is tried in order. */
function gpaPolicy(n: number): string {
  let y = header(`gpa-${n}`);
  for (let i = 0; i < n; i++) {
    const from = (i + 1) * 16 * PAGE;
    y += `  - name: r${i}\n    match: { kind: sea, gpa: [{ from: 0x${from.toString(16)}, to: 0x${(from + 16 * PAGE - 1).toString(16)} }] }\n`;
    y += `    action: { type: kill }\n`;
  }
  return y + footer;
}

/** Events spread evenly over the rules (and over 256 VMs), so the average match position is n/2. */
function events(n: number): PolicyEvent[] {
  const out: PolicyEvent[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const r = i % n;
    out.push(
      policyEventFromJson({
        kind: 'sea',
        vm: { id: `vm${i % 256}`, labels: { tenant: `t${r}`, tier: 'gold' } },
        vcpu: i % 4,
        esr: '0x92000410',
        gpa: `0x${((r + 1) * 16 * PAGE + (i % 16) * PAGE).toString(16)}`,
        timeMs: 1_767_225_600_000 + i * 1000,
      }),
    );
  }
  return out;
}

function measure(policy: CompiledPolicy, evs: PolicyEvent[]): number {
  const budgetNs = 300_000_000n;
  for (let i = 0; i < 20_000; i++) policy.decide(evs[i % evs.length] as PolicyEvent, HOST); // warm-up
  let n = 0;
  let sink = 0;
  const start = process.hrtime.bigint();
  let now = start;
  while (now - start < budgetNs) {
    for (let i = 0; i < evs.length; i++) sink += policy.decide(evs[i] as PolicyEvent, HOST).rule.length;
    n += evs.length;
    now = process.hrtime.bigint();
  }
  if (sink === 0) throw new Error('unreachable');
  return Number(now - start) / n;
}

interface Row {
  policy: string;
  rules: number;
  indexed: boolean;
  nsPerEvent: number;
}

const rows: Row[] = [];
rows.push({
  policy: 'builtin (baseline)',
  rules: 1,
  indexed: false,
  nsPerEvent: measure(builtinPolicy(), events(10)),
});
for (const n of SIZES) {
  const evs = events(n);
  const label = compile(labelPolicy(n));
  rows.push({
    policy: 'label-indexed',
    rules: n,
    indexed: label.indexKey !== null,
    nsPerEvent: measure(label, evs),
  });
  const gpa = compile(gpaPolicy(n));
  rows.push({
    policy: 'gpa-ranges',
    rules: n,
    indexed: gpa.indexKey !== null,
    nsPerEvent: measure(gpa, evs),
  });
}

if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ node: process.version, rows }, null, 2)}\n`);
} else {
  process.stdout.write(`policy-eval (node ${process.version}): ns per decide(), state updates included\n`);
  process.stdout.write(
    `${'policy'.padEnd(20)}${'rules'.padStart(7)}${'indexed'.padStart(9)}${'ns/event'.padStart(11)}\n`,
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.policy.padEnd(20)}${String(r.rules).padStart(7)}${String(r.indexed).padStart(9)}${r.nsPerEvent.toFixed(0).padStart(11)}\n`,
    );
  }
}

/**
 * `seawall policy test`: synthetic event streams with expected decisions, like
 * `promtool test rules`. A test file names a policy (relative to itself), host capabilities and,
 * per test case, events at synthetic times with what each should get. Each case starts from an
 * empty state, so cases do not leak windows into one another.
 */

import { dirname, resolve } from 'node:path';
import * as z from 'zod';
import { describeAction } from './actions.js';
import { compilePolicy } from './compile.js';
import type { Decision, HostCapabilities } from './decision.js';
import type { PolicyIssue } from './errors.js';
import { eventBodyIssues, eventBodyShape, eventFromBody } from './event-json.js';
import { loadPolicyFile } from './load.js';
import { durationSchema, u64Schema } from './schema-values.js';
import { PolicyState } from './state.js';
import { readYamlFile } from './yaml-file.js';
import { parseYamlSource } from './yaml-source.js';

const hostSchema = z.strictObject({
  abi: z.enum(['merged', 'ext-abt-esr']).default('merged'),
  ras: z.boolean().default(true),
  emulateAbort: z.boolean().default(false),
});

/** What an event should get; only the keys given are compared. */
const expectSchema = z.strictObject({
  action: z.enum(['inject', 'kill', 'migrate', 'none']),
  rule: z.string().optional(),
  /** inject: the abort kind; migrate: the meanwhile abort kind, or `none`. */
  abort: z.enum(['data', 'instruction', 'none']).optional(),
  /** The ISS carried, or `kvm` when KVM builds the ESR. */
  iss: z.union([z.literal('kvm'), u64Schema]).optional(),
  via: z.enum(['kvm', 'emulate']).optional(),
  hook: z.string().optional(),
  grace: durationSchema.optional(),
  downgraded: z.boolean().optional(),
  /** Dry-run policies: the action the policy would have taken. */
  wouldHave: z.enum(['inject', 'kill', 'migrate', 'none']).optional(),
});

const stepSchema = z.strictObject({
  at: durationSchema,
  event: z.strictObject(eventBodyShape),
  expect: expectSchema,
});

export const policyTestFileSchema = z.strictObject({
  policy: z.string().min(1),
  host: hostSchema.default({ abi: 'merged', ras: true, emulateAbort: false }),
  /** Time of `at: 0s`; RFC 3339. */
  start: z.iso.datetime({ offset: true }).default('2026-01-01T00:00:00Z'),
  tests: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        host: hostSchema.optional(),
        events: z.array(stepSchema).min(1),
      }),
    )
    .min(1),
});

type Expect = z.output<typeof expectSchema>;

/** One expected-vs-got difference. */
export interface Mismatch {
  key: string;
  expected: string;
  got: string;
}

export interface StepFailure {
  test: string;
  /** 0-based position of the event in its test. */
  step: number;
  /** The event's `at`, as written. */
  at: string;
  line: number;
  decision: string;
  mismatches: Mismatch[];
}

export type PolicyTestResult =
  | { ok: true; policyPath: string; tests: number; events: number; failures: StepFailure[] }
  | { ok: false; file: string; issues: PolicyIssue[] };

const show = (v: unknown) =>
  typeof v === 'bigint' ? `0x${v.toString(16)}` : v === undefined ? '(absent)' : String(v);

function compare(expect: Expect, d: Decision): Mismatch[] {
  const inj = d.action === 'inject' ? d.inject : d.action === 'migrate' ? d.meanwhile : null;
  const got: Record<keyof Expect, unknown> = {
    action: d.action,
    rule: d.rule,
    abort: inj ? inj.kind : 'none',
    iss: inj ? (inj.iss === undefined ? 'kvm' : BigInt(inj.iss)) : undefined,
    via: inj?.via,
    hook: d.action === 'migrate' ? d.hook : undefined,
    grace: d.action === 'kill' ? d.graceMs : undefined,
    downgraded: d.downgrade !== undefined,
    wouldHave: d.dryRun?.wouldHave.action,
  };
  const out: Mismatch[] = [];
  for (const key of Object.keys(expect) as (keyof Expect)[]) {
    const want = expect[key];
    if (want !== undefined && want !== got[key]) out.push({ key, expected: show(want), got: show(got[key]) });
  }
  return out;
}

/** Runs one test file; a malformed test file or an invalid policy comes back as issues. */
export async function runPolicyTestFile(path: string): Promise<PolicyTestResult> {
  const read = readYamlFile(path);
  if (!read.ok) return { ok: false, file: path, issues: [read.issue] };
  const parsed = parseYamlSource(
    read.text,
    policyTestFileSchema,
    () => [],
    (file) =>
      file.tests.flatMap((t, ti) =>
        t.events.flatMap((s, si) =>
          eventBodyIssues(s.event).map((i) => ({
            code: 'schema' as const,
            path: ['tests', ti, 'events', si, 'event', ...i.path],
            message: i.message,
          })),
        ),
      ),
  );
  if (!parsed.ok) return { ok: false, file: path, issues: parsed.issues };
  const file = parsed.value;
  const policyPath = resolve(dirname(path), file.policy);
  const loaded = await loadPolicyFile(policyPath);
  if (!loaded.ok) return { ok: false, file: policyPath, issues: loaded.issues };
  const start = Date.parse(file.start);
  const failures: StepFailure[] = [];
  let events = 0;
  file.tests.forEach((t, ti) => {
    const host: HostCapabilities = t.host ?? file.host;
    const policy = compilePolicy(loaded.policy, { state: new PolicyState() });
    t.events.forEach((step, si) => {
      events++;
      const decision = policy.decide(eventFromBody(step.event, start + step.at), host);
      const mismatches = compare(step.expect, decision);
      if (mismatches.length > 0) {
        const stepPath = ['tests', ti, 'events', si];
        failures.push({
          test: t.name,
          step: si,
          at: String((parsed.raw as { tests: { events: { at: unknown }[] }[] }).tests[ti]?.events[si]?.at),
          line: parsed.locate(stepPath),
          decision: `${describeAction(decision)} by rule ${decision.rule}`,
          mismatches,
        });
      }
    });
  });
  return { ok: true, policyPath, tests: file.tests.length, events, failures };
}

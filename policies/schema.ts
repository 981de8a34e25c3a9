/**
 * The policy file format. This zod schema is the only definition of it: the TypeScript types
 * below are inferred from it, and docs/policies.md describes the same keys. Every object is
 * strict (an unknown key is an error, so a typo never silently disables a matcher). Checks that
 * need the kvm/ codec (ISS fields) run here too, so one parse reports every problem.
 */
import * as z from 'zod';
import { labelTextProblem } from '../errors/index.js';
import { encodeIss, isKvmError, validateRawIss } from '../kvm/index.js';
import { EVENT_KINDS } from './decision.js';
import { labelsSchema, rateSchema, smallIntSchema, timerDurationSchema, u64Schema } from './schema-values.js';

/**
 * A value or a non-empty list of values, always read as a list, each value once: a list's values
 * are terms the daemon compiles on its event loop, and YAML aliases copy a list into every rule
 * that names it, so `vcpu` holds at most the 65,536 vCPU indexes and `kind` its four kinds.
 * `max` bounds a list whose items are objects, which are not deduplicated.
 */
function oneOrMany<T extends z.ZodType>(item: T, what: string, max = Number.POSITIVE_INFINITY) {
  const list = Number.isFinite(max)
    ? z
        .array(item)
        .min(1)
        .max(max, { error: `at most ${max} of ${what}` })
    : z.array(item).min(1);
  return z
    .union([item, list], { error: `expected ${what}, or a non-empty list of them` })
    .transform((v) => [...new Set(Array.isArray(v) ? v : [v])] as z.output<T>[]);
}

/** onUnsupported options a list may hold: one of each kind (emulate, downgrade, kill, migrate, none). */
export const MAX_UNSUPPORTED_OPTIONS = 5;

const labelValue = z.union([z.string(), z.bigint(), z.number(), z.boolean()]).transform((v) => String(v));

/** `tier: gold`, `tenant: {in: [a, b]}`, `canary: {exists: true}`. */
export const labelMatchSchema = z.union(
  [labelValue, z.strictObject({ in: z.array(labelValue).min(1) }), z.strictObject({ exists: z.boolean() })],
  { error: 'a label matcher is a value, {in: [values…]} or {exists: true|false}' },
);

const gpaRangeSchema = z.strictObject({ from: u64Schema, to: u64Schema }).superRefine((r, ctx) => {
  if (r.from > r.to) {
    ctx.addIssue({
      code: 'custom',
      path: ['to'],
      message: `range ends (0x${r.to.toString(16)}) before it starts (0x${r.from.toString(16)})`,
      params: { policyCode: 'gpa-range' },
    });
  }
});

export const RATE_SCOPES = ['vm', 'host', 'page'] as const;
export type RateScope = (typeof RATE_SCOPES)[number];

/** Every matcher is optional; a rule with no `match` matches every event. */
export const matchSchema = z.strictObject({
  labels: labelsSchema(labelMatchSchema).optional(),
  kind: oneOrMany(
    z.enum(EVENT_KINDS as ['sea', 'nisv', 'mmio', 'sigbus']),
    'sea, nisv, mmio or sigbus',
  ).optional(),
  abort: oneOrMany(z.enum(['data', 'instruction']), 'data or instruction').optional(),
  fsc: oneOrMany(
    z.enum(['sea', 'sea-walk', 'parity', 'parity-walk', 'other']),
    'sea, sea-walk, parity, parity-walk or other',
  ).optional(),
  severity: oneOrMany(
    z.enum(['uer', 'ueo', 'uc', 'reserved', 'unknown']),
    'uer, ueo, uc, reserved or unknown',
  ).optional(),
  gpaKnown: z.boolean().optional(),
  gpa: z.array(gpaRangeSchema).min(1).optional(),
  vcpu: oneOrMany(smallIntSchema(0xffff, 'vcpu'), 'a vCPU index').optional(),
  repeatPage: z.boolean().optional(),
  rate: z.strictObject({ threshold: rateSchema, scope: z.enum(RATE_SCOPES).default('vm') }).optional(),
});

const ISS_FIELDS = ['set', 'fnv', 'ea', 'cm', 'wnr', 'fsc'] as const;

/** An abort to inject: KVM's own ESR (no ISS keys), named ISS fields, or a raw `iss`. */
export const injectSpecShape = {
  abort: z.enum(['data', 'instruction']),
  set: z.enum(['uer', 'uc', 'ueo']).optional(),
  fnv: z.boolean().optional(),
  ea: z.boolean().optional(),
  cm: z.boolean().optional(),
  wnr: z.boolean().optional(),
  fsc: smallIntSchema(0x3f, 'fsc').optional(),
  iss: u64Schema.optional(),
};

const injectSpecBase = z.strictObject(injectSpecShape);
type InjectSpecOut = z.output<typeof injectSpecBase>;

/** Validates ISS keys through kvm/ so the issue lands on the key the codec blamed. */
function checkIss(spec: InjectSpecOut, ctx: z.RefinementCtx): void {
  const named = ISS_FIELDS.filter((k) => spec[k] !== undefined);
  if (spec.iss !== undefined && named.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['iss'],
      message: `give either a raw iss or named fields (${named.join(', ')}), not both`,
      params: { policyCode: 'iss-invalid' },
    });
    return;
  }
  try {
    if (spec.iss !== undefined) validateRawIss(spec.iss);
    else if (named.length > 0) encodeIss(spec, spec.abort);
  } catch (err) {
    if (!isKvmError(err, 'SEAWALL_KVM_ISS_INVALID')) throw err;
    const field = typeof err.detail.field === 'string' ? err.detail.field : 'iss';
    ctx.addIssue({
      code: 'custom',
      path: [field],
      message: err.message,
      params: { policyCode: 'iss-invalid' },
    });
  }
}

export const injectSpecSchema = injectSpecBase.superRefine(checkIss);

const killSchema = z.strictObject({ type: z.literal('kill'), grace: timerDurationSchema.default(0) });
const noneSchema = z.strictObject({ type: z.literal('none') });
const migrateSchema = z.strictObject({
  type: z.literal('migrate'),
  hook: z.string().min(1),
  /** `vm` migrates the VM that erred; `host` evacuates every VM on the host. */
  scope: z.enum(['vm', 'host']).default('vm'),
  /** What the stalled vCPU gets now: an abort, or `none` (it stays stalled until the VM moves). */
  meanwhile: z.union([z.literal('none'), injectSpecSchema]),
  onFailure: z.discriminatedUnion('type', [killSchema, noneSchema]),
});

export const actionSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('inject'), ...injectSpecShape }).superRefine(checkIss),
  killSchema,
  migrateSchema,
  noneSchema,
]);

/**
 * What to do when the host cannot inject what the action asks, tried in order: `emulate` (the
 * VMM's register-level injection, when the host has it), `downgrade` (what the host can do:
 * a data abort whose ESR KVM builds), or a whole replacement action (kill, migrate, none).
 */
export const onUnsupportedSchema = oneOrMany(
  z.union([
    z.enum(['emulate', 'downgrade']),
    z.discriminatedUnion('type', [killSchema, migrateSchema, noneSchema]),
  ]),
  'emulate, downgrade or an action {type: kill|migrate|none, …}',
  MAX_UNSUPPORTED_OPTIONS,
).superRefine((options, ctx) => {
  // `emulate` depends on the host; a list of only `emulate` could leave no answer at all.
  if (options.every((o) => o === 'emulate')) {
    ctx.addIssue({
      code: 'custom',
      message:
        'emulate needs a fallback for hosts whose VMM cannot emulate: add downgrade, kill, migrate or none',
      params: { policyCode: 'unsupported-fallback' },
    });
  }
});

/**
 * A rule's name labels its metrics series (`seawall_actions_total{rule}`): the metrics layer takes
 * 1–128 characters without a control character (errors/label-text.ts), and a name it refuses
 * would cost every verdict of the rule its counts.
 */
const ruleNameSchema = z.string().superRefine((name, ctx) => {
  const problem = labelTextProblem(name);
  if (problem !== null) {
    ctx.addIssue({
      code: 'custom',
      message: `rule name ${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)} ${problem}; a rule name is 1–128 characters without control characters (it labels the rule's metrics)`,
    });
  }
});

export const ruleSchema = z.strictObject({
  name: ruleNameSchema,
  description: z.string().optional(),
  match: matchSchema.default({}),
  action: actionSchema,
  onUnsupported: onUnsupportedSchema.optional(),
});

export const policySchema = z.strictObject({
  version: smallIntSchema(1, 'version', 1),
  name: z.string().min(1),
  description: z.string().optional(),
  /** Decide and record, but answer with the built-in default. */
  dryRun: z.boolean().default(false),
  /** Keys (VMs, pages) the rate/repeat state keeps before evicting the least recently seen. */
  rateStateBound: smallIntSchema(1 << 24, 'rateStateBound', 1).optional(),
  /** Migration hooks the daemon has; when present, every migrate must name one of them. */
  hooks: z.array(z.string().min(1)).optional(),
  rules: z.array(ruleSchema).default([]),
  default: z.strictObject({ action: actionSchema, onUnsupported: onUnsupportedSchema.optional() }),
});

/** A validated policy document (durations in ms, rates parsed, GPAs as bigints). */
export type PolicyDocument = z.output<typeof policySchema>;
/** What a policy file holds before validation (YAML ints may be bigints). */
export type PolicySource = z.input<typeof policySchema>;
export type PolicyRule = z.output<typeof ruleSchema>;
export type RuleMatch = z.output<typeof matchSchema>;
export type LabelMatch = z.output<typeof labelMatchSchema>;
export type ActionSpec = z.output<typeof actionSchema>;
export type InjectSpec = z.output<typeof injectSpecSchema>;
export type OnUnsupportedOption = z.output<typeof onUnsupportedSchema>[number];

/**
 * Events written as JSON (explain's --event, policy test files, the simulator): validated with
 * zod and decoded with kvm/'s ESR codec into the `PolicyEvent` the engine sees. The format is
 * documented in docs/policies.md ("Event JSON").
 */
import * as z from 'zod';
import { decodeAbortIss, decodeEsr, ISS_MASK } from '../kvm/index.js';
import { EVENT_KINDS, type PolicyEvent } from './decision.js';
import { formatPath, PolicyError, type PolicyIssue } from './errors.js';
import { labelsSchema, smallIntSchema, u64Schema } from './schema-values.js';
import { fromZodIssues } from './yaml-source.js';

const PAGE_MASK = ~0xfffn;

const labelValue = z.union([z.string(), z.bigint(), z.number(), z.boolean()]).transform((v) => String(v));

/** The event fields shared by JSON events and test-file events (which give time as `at`). */
export const eventBodyShape = {
  kind: z.enum(EVENT_KINDS as ['sea', 'nisv', 'mmio', 'sigbus']),
  vm: z.strictObject({ id: z.string().min(1), labels: labelsSchema(labelValue).default({}) }),
  vcpu: smallIntSchema(0xffff, 'vcpu').nullable().default(null),
  /** Full ESR for sea; the ISS (or a full ESR whose EC is ignored) for nisv. */
  esr: u64Schema.optional(),
  /** Guest physical address, when known; its low 12 bits are dropped (the engine sees pages). */
  gpa: u64Schema.nullable().default(null),
  /** Informational: the faulting guest virtual address (valid when ESR.FnV is 0). */
  gva: u64Schema.optional(),
  sigbusCode: z.enum(['BUS_MCEERR_AR', 'BUS_MCEERR_AO']).optional(),
};

export const eventJsonSchema = z.strictObject({
  ...eventBodyShape,
  /** RFC 3339 time, e.g. 2026-01-01T00:00:00Z. */
  time: z.iso.datetime({ offset: true }).optional(),
  /** Or milliseconds since the epoch. */
  timeMs: z.number().int().nonnegative().optional(),
});

type EventBody = z.output<z.ZodObject<typeof eventBodyShape>>;

/** Cross-field rules, as issues: what each kind must and must not carry. */
export function eventBodyIssues(e: EventBody): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  if ((e.kind === 'sea' || e.kind === 'nisv') && e.esr === undefined)
    issues.push({ path: ['esr'], message: `a ${e.kind} event carries an esr` });
  if ((e.kind === 'mmio' || e.kind === 'sigbus') && e.esr !== undefined)
    issues.push({ path: ['esr'], message: `a ${e.kind} event has no esr` });
  if (e.kind === 'sea' && e.esr !== undefined && decodeEsr(e.esr).abort === null)
    issues.push({ path: ['esr'], message: `ESR 0x${e.esr.toString(16)} is not a data or instruction abort` });
  if (e.kind === 'sigbus' && e.sigbusCode === undefined)
    issues.push({
      path: ['sigbusCode'],
      message: 'a sigbus event carries sigbusCode BUS_MCEERR_AR or BUS_MCEERR_AO',
    });
  if (e.kind !== 'sigbus' && e.sigbusCode !== undefined)
    issues.push({ path: ['sigbusCode'], message: 'sigbusCode belongs to sigbus events only' });
  if (e.kind !== 'sigbus' && e.vcpu === null)
    issues.push({ path: ['vcpu'], message: `a ${e.kind} exit happens on a vCPU: give its index` });
  return issues;
}

/** Builds the typed event; the body must have passed `eventBodyIssues`. */
export function eventFromBody(e: EventBody, timeMs: number): PolicyEvent {
  const base = {
    kind: e.kind,
    vm: { id: e.vm.id, labels: e.vm.labels },
    vcpu: e.vcpu,
    timeMs,
    gpa: e.gpa === null ? null : e.gpa & PAGE_MASK,
    gva: e.gva ?? null,
    sigbusCode: e.sigbusCode ?? null,
  };
  switch (e.kind) {
    case 'sea': {
      const esr = decodeEsr(e.esr as bigint);
      const a = esr.abort;
      return {
        ...base,
        esr,
        abort: a?.kind ?? null,
        fsc: a?.fscClass.kind ?? null,
        severity: a?.severity ?? 'unknown',
      };
    }
    case 'nisv': {
      // NISV reports the ISS only (reference §2: arm_nisv.esr_iss); it is always a data abort.
      const esr = decodeEsr(e.esr as bigint);
      const a = decodeAbortIss(Number((e.esr as bigint) & BigInt(ISS_MASK)), 'data', true);
      return { ...base, esr, abort: 'data', fsc: a.fscClass.kind, severity: a.severity ?? 'unknown' };
    }
    case 'mmio':
      return { ...base, esr: null, abort: 'data', fsc: null, severity: 'unknown' };
    case 'sigbus':
      return { ...base, esr: null, abort: null, fsc: null, severity: 'unknown' };
  }
}

export type EventParseResult = { ok: true; event: PolicyEvent } | { ok: false; issues: PolicyIssue[] };

/** Validates an event object (parsed JSON) and builds the `PolicyEvent`; issues as data. */
export function parsePolicyEvent(obj: unknown): EventParseResult {
  const r = eventJsonSchema.safeParse(obj);
  const toIssues = (
    list: { code?: PolicyIssue['code']; path: readonly (string | number)[]; message: string }[],
  ) => list.map((i) => ({ code: i.code ?? 'schema', path: formatPath(i.path), line: 0, message: i.message }));
  if (!r.success) return { ok: false, issues: toIssues(fromZodIssues(r.error.issues)) };
  const cross = eventBodyIssues(r.data);
  if (r.data.time !== undefined && r.data.timeMs !== undefined)
    cross.push({ path: ['timeMs'], message: 'give time or timeMs, not both' });
  if (cross.length > 0) return { ok: false, issues: toIssues(cross) };
  const timeMs = r.data.time !== undefined ? Date.parse(r.data.time) : (r.data.timeMs ?? 0);
  return { ok: true, event: eventFromBody(r.data, timeMs) };
}

/** Like `parsePolicyEvent`, throwing `PolicyError` (SEAWALL_POLICY_EVENT_INVALID) on bad input. */
export function policyEventFromJson(obj: unknown): PolicyEvent {
  const r = parsePolicyEvent(obj);
  if (!r.ok) throw new PolicyError('SEAWALL_POLICY_EVENT_INVALID', r.issues);
  return r.event;
}

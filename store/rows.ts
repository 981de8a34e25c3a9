/**
 * Conversions between the daemon's records and the store's rows, in one place: the encoding rules
 * are in schema.ts (64-bit values as `0x` + 16 hex digits, times in ms, lists as JSON).
 */

import type { EventRecord } from '../events/index.js';
import { decodeEsr } from '../kvm/index.js';
import type { EventKind, PolicyEvent, PolicySeverity } from '../policies/index.js';

/** A 64-bit unsigned value as stored: `0x` + 16 lowercase hex digits (text order = numeric order). */
export function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

/** The inverse of `hex64`; also accepts shorter `0x…` text written by hand. */
export function parseHex64(text: string): bigint {
  return BigInt(text);
}

/** One stored event as queries return it: JSON-ready (hex strings, numbers, plain lists). */
export interface StoredEvent {
  id: number;
  timeMs: number;
  vm: string;
  labels: Record<string, string>;
  vcpu: number | null;
  kind: EventKind;
  /** Full ESR as hex (for nisv: EC 0x24 with the reported ISS); null for mmio and sigbus. */
  esr: string | null;
  ec: number | null;
  fsc: number | null;
  fscClass: string | null;
  abort: 'data' | 'instruction' | null;
  severity: PolicySeverity;
  sigbusCode: string | null;
  gva: string | null;
  /** Guest physical page (low 12 bits clear); null when unknown. */
  gpa: string | null;
  replay: boolean;
  /**
   * The ACTION code the plugin applied by itself: for replays, and for an event whose verdict
   * arrived after the plugin's fallback had answered (a 1.1 APPLIED said so). Then the guest got
   * this, not `verdictAction`.
   */
  fallbackAction: number | null;
  /** The policy's decision; null for replays. */
  action: string | null;
  rule: string | null;
  policyVersion: string | null;
  /** Codes as in `Downgrade` (policies/decision.ts); `detail` in words (absent in rows before schema 4). */
  downgrades: { by: 'policy' | 'daemon'; from: string; to: string; reason: string; detail?: string }[];
  verdictAction: number | null;
  verdictFlags: number | null;
  /** Receive → stored, just before the verdict was written (ns). */
  latencyNs: number | null;
  nonConforming: string[];
  /** null when the vCPU was not attached (no kernel copy to compare). */
  kernelMismatch: string[] | null;
  /** What the plugin's APPLIED reported (0 or -errno); null until it arrives. */
  applied: number | null;
  appliedMs: number | null;
  bootId: string;
  sessionId: number;
  seq: number;
}

/** The row as SQLite returns it (snake_case columns). */
export interface EventRow {
  id: number;
  boot_id: string;
  session_id: number;
  seq: number;
  time_ms: number;
  vm: string;
  labels: string;
  vcpu: number | null;
  kind: string;
  esr: string | null;
  ec: number | null;
  fsc: number | null;
  fsc_class: string | null;
  abort: string | null;
  severity: string;
  sigbus_code: string | null;
  gva: string | null;
  gpa: string | null;
  replay: number;
  fallback_action: number | null;
  action: string | null;
  rule: string | null;
  policy_version: string | null;
  downgrade: string | null;
  verdict_action: number | null;
  verdict_flags: number | null;
  latency_ns: number | null;
  non_conforming: string | null;
  kernel_mismatch: string | null;
  /** The plugin's CLOCK_REALTIME ns for the exit (0x + 16 hex); null in rows from schema < 3. */
  plugin_time_ns: string | null;
  /** The event's place in its session (1, 2, …): with boot and session, what makes it unique. */
  ord: number;
  applied: number | null;
  applied_ms: number | null;
}

/** Named parameters of the event INSERT. */
/** Named parameters of the event INSERT: plain JSON values (session ids are small counters). */
export type EventParams = Omit<EventRow, 'id' | 'applied' | 'applied_ms'>;

const jsonOrNull = (v: readonly unknown[] | null): string | null =>
  v === null || v.length === 0 ? null : JSON.stringify(v);

/** The INSERT parameters for one record; `storedNs` is hrtime when the batch is stored. */
export function eventParams(r: EventRecord, bootId: string, storedNs: bigint): EventParams {
  const e = r.event;
  const m = r.msg;
  const d = r.decision;
  const downgrades: StoredEvent['downgrades'] = [];
  if (d?.downgrade) downgrades.push({ by: 'policy', ...d.downgrade });
  if (r.verdictDowngrade) downgrades.push({ by: 'daemon', ...r.verdictDowngrade });
  return {
    boot_id: bootId,
    session_id: Number(r.session.id),
    seq: m.seq,
    time_ms: e.timeMs,
    vm: e.vm.id,
    labels: JSON.stringify(e.vm.labels),
    vcpu: e.vcpu,
    kind: e.kind,
    esr: e.esr ? hex64(e.esr.raw) : null,
    ec: e.esr ? e.esr.ec : null,
    fsc: e.esr?.abort ? e.esr.abort.fsc : null,
    fsc_class: e.fsc,
    abort: e.abort,
    severity: e.severity,
    sigbus_code: e.sigbusCode,
    gva: m.type === 'sea' ? hex64(m.gva) : null,
    gpa: e.gpa === null ? null : hex64(e.gpa),
    replay: r.replay ? 1 : 0,
    fallback_action: r.replay ? m.fallbackAction : null,
    action: d ? d.action : null,
    rule: d ? d.rule : null,
    policy_version: d ? d.policyVersion : null,
    downgrade: jsonOrNull(downgrades),
    verdict_action: r.verdict ? r.verdict.action : null,
    verdict_flags: r.verdict ? r.verdict.flags : null,
    latency_ns: r.replay ? null : Number(storedNs - r.receivedNs),
    non_conforming: jsonOrNull(r.nonConforming),
    kernel_mismatch: r.kernelMismatch === null ? null : JSON.stringify(r.kernelMismatch),
    plugin_time_ns: hex64(m.timeNs),
    ord: r.ord ?? m.seq,
  };
}

/** Whether an event marks its page as poisoned (SEA and SIGBUS memory errors with a known GPA). */
export function poisonsPage(r: EventRecord): boolean {
  return r.event.gpa !== null && (r.event.kind === 'sea' || r.event.kind === 'sigbus');
}

export function storedEvent(row: EventRow): StoredEvent {
  return {
    id: row.id,
    timeMs: row.time_ms,
    vm: row.vm,
    labels: JSON.parse(row.labels) as Record<string, string>,
    vcpu: row.vcpu,
    kind: row.kind as EventKind,
    esr: row.esr,
    ec: row.ec,
    fsc: row.fsc,
    fscClass: row.fsc_class,
    abort: row.abort as StoredEvent['abort'],
    severity: row.severity as PolicySeverity,
    sigbusCode: row.sigbus_code,
    gva: row.gva,
    gpa: row.gpa,
    replay: row.replay === 1,
    fallbackAction: row.fallback_action,
    action: row.action,
    rule: row.rule,
    policyVersion: row.policy_version,
    downgrades: row.downgrade === null ? [] : (JSON.parse(row.downgrade) as StoredEvent['downgrades']),
    verdictAction: row.verdict_action,
    verdictFlags: row.verdict_flags,
    latencyNs: row.latency_ns,
    nonConforming: row.non_conforming === null ? [] : (JSON.parse(row.non_conforming) as string[]),
    kernelMismatch: row.kernel_mismatch === null ? null : (JSON.parse(row.kernel_mismatch) as string[]),
    applied: row.applied,
    appliedMs: row.applied_ms,
    bootId: row.boot_id,
    sessionId: row.session_id,
    seq: row.seq,
  };
}

/** The columns a PolicyEvent needs, as selected by `recentPolicyEvents`. */
export type PolicyEventRow = Pick<
  EventRow,
  | 'time_ms'
  | 'vm'
  | 'labels'
  | 'vcpu'
  | 'kind'
  | 'esr'
  | 'fsc_class'
  | 'abort'
  | 'severity'
  | 'gpa'
  | 'sigbus_code'
>;

/** Rebuilds the policy's view of a stored event; the ESR is decoded again by kvm/. */
export function policyEvent(row: PolicyEventRow): PolicyEvent {
  return {
    kind: row.kind as EventKind,
    vm: { id: row.vm, labels: Object.freeze(JSON.parse(row.labels) as Record<string, string>) },
    vcpu: row.vcpu,
    timeMs: row.time_ms,
    esr: row.esr === null ? null : decodeEsr(parseHex64(row.esr)),
    abort: row.abort as PolicyEvent['abort'],
    fsc: row.fsc_class as PolicyEvent['fsc'],
    severity: row.severity as PolicySeverity,
    gpa: row.gpa === null ? null : parseHex64(row.gpa),
    sigbusCode: row.sigbus_code as PolicyEvent['sigbusCode'],
  };
}

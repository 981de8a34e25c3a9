/**
 * Conversions between the daemon's records and the store's rows, in one place: the encoding rules
 * are in schema.ts (64-bit values as `0x` + 16 hex digits, times in ms, lists as JSON).
 */

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

/**
 * One entry of an event row's `downgrade` list (JSON): what was asked (`from`), what was sent
 * instead (`to`) and why. `by`: the rule's `onUnsupported` (`policy`), the daemon's last resort
 * (`daemon`), or a dry-run policy, whose decision was recorded and the built-in one sent
 * (`dry_run`, with the reason `dry_run`).
 */
export interface StoredDowngrade {
  by: 'policy' | 'daemon' | 'dry_run';
  from: string;
  to: string;
  reason: string;
  detail?: string;
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
  downgrades: (StoredDowngrade & { by: 'policy' | 'daemon' })[];
  /**
   * Under a dry-run policy, what its rule decided, which was not sent (`action` is what was): the
   * decision's short code (as a downgrade's `from`: `kill`, `migrate`, `none`, `dabt_esr` …) and
   * the same with its parameters in words. null when the policy was not in dry-run.
   */
  wouldHave: { code: string; detail: string } | null;
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
  /** The row's identity (see `EventParams`). */
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

/** The stored columns of an event row, in the order of `EventValues`, the INSERT and the write-ahead file. */
export const EVENT_COLUMNS = [
  'boot_id',
  'session_id',
  'seq',
  'time_ms',
  'vm',
  'labels',
  'vcpu',
  'kind',
  'esr',
  'ec',
  'fsc',
  'fsc_class',
  'abort',
  'severity',
  'sigbus_code',
  'gva',
  'gpa',
  'replay',
  'fallback_action',
  'action',
  'rule',
  'policy_version',
  'downgrade',
  'verdict_action',
  'verdict_flags',
  'latency_ns',
  'non_conforming',
  'kernel_mismatch',
  'plugin_time_ns',
  'ord',
  'id',
] as const satisfies readonly (keyof EventRow)[];

/**
 * The INSERT parameters of one event, by column name (the write-ahead file's first encoding). The
 * id is given by the daemon as the row is built (EventStore.rowsOf), in the order events are
 * stored, and goes with the row through the write-ahead file: it is the row's identity, which
 * makes an insert idempotent and finds the event an APPLIED result is for. null in a row written
 * ahead by a seawall before schema 9, which SQLite gives one as it inserts it.
 */
export type EventParams = Omit<Pick<EventRow, (typeof EVENT_COLUMNS)[number]>, 'id'> & { id: number | null };

/**
 * One event row as positional values in `EVENT_COLUMNS` order: what the verdict path builds, the
 * write-ahead file holds (a JSON array: no column names to write or parse per event) and the
 * INSERT binds.
 */
export type EventValues = ValuesOf<typeof EVENT_COLUMNS>;
type ValuesOf<T extends readonly (keyof EventParams)[]> = { -readonly [I in keyof T]: EventParams[T[I]] };

/**
 * Event row ids stay at or below this (from 1, at 200,000 events a second, for 700 years): a line
 * with a larger one is not the daemon's, and a store holding one is refused at open, before an id
 * past what a JavaScript number holds exactly is given.
 */
export const MAX_ROW_ID = 2 ** 52;

/** Indexes into `EventValues` of the columns the store itself reads. */
export const COL = {
  bootId: 0,
  sessionId: 1,
  seq: 2,
  timeMs: 3,
  vm: 4,
  kind: 7,
  gpa: 16,
  fallbackAction: 18,
  pluginTimeNs: 28,
  ord: 29,
  id: 30,
} as const satisfies { [k: string]: number };

export function valuesOfParams(p: EventParams): EventValues {
  return EVENT_COLUMNS.map((c) => p[c]) as unknown as EventValues;
}

/**
 * The key a replay of this event would match: the VM, the plugin's seq and its exit time (in ns,
 * as the message carries it; the row's `plugin_time_ns` is its `hex64` text). Three fields, not one
 * string made of them: the write-ahead layer keeps one per row in flight, and joining and hashing
 * a string per event was ~5 % of the event loop's time in a storm (store/held-rows.ts
 * `PendingKeys`); the time's text is made only for a replay, to look it up in the store.
 */
export interface ReplayKey {
  readonly vm: string;
  readonly seq: number;
  readonly time: bigint;
}

/** Whether a stored row marks its page as poisoned: events/ `poisonsPage`, read from the row. */
export function valuesPoisonPage(v: EventValues): boolean {
  return v[COL.gpa] !== null && (v[COL.kind] === 'sea' || v[COL.kind] === 'sigbus');
}

/**
 * A row's `downgrade` list, its dry-run entry apart: that one records a decision, not a downgrade.
 * Anything else the column holds (a row edited by hand) is given as it is, as before.
 */
function downgradesOfRow(text: string | null): Pick<StoredEvent, 'downgrades' | 'wouldHave'> {
  if (text === null) return { downgrades: [], wouldHave: null };
  const list: unknown = JSON.parse(text);
  if (!Array.isArray(list)) return { downgrades: list as StoredEvent['downgrades'], wouldHave: null };
  const downgrades: StoredEvent['downgrades'] = [];
  let wouldHave: StoredEvent['wouldHave'] = null;
  for (const d of list as (StoredDowngrade | null)[]) {
    if (d?.by === 'dry_run') wouldHave = { code: d.from, detail: d.detail ?? d.from };
    else downgrades.push(d as StoredEvent['downgrades'][number]);
  }
  return { downgrades, wouldHave };
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
    ...downgradesOfRow(row.downgrade),
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

/**
 * What the store writes after a segment's event rows, as the event loop hands it over: APPLIED
 * results, and session, action and policy rows (store/inserts.ts writes them, store/update-lines.ts
 * writes them ahead).
 */
import type { SessionInfo } from '../events/index.js';
import type { StoreOp } from './errors.js';

/**
 * An APPLIED result waiting for its event row: [session id, order of the event in its session
 * (store/awaiting-applied.ts), result, received ms, fallback action, the row's id]. The fallback
 * action is the ACTION the plugin's fallback applied before the verdict arrived (a 1.1 APPLIED
 * with source FALLBACK), else null. The row's id is null in a result written ahead by a seawall
 * before schema 9: its row is found by boot, session and order then.
 */
export type AppliedUpdate = [
  sessionId: number,
  ord: number,
  result: number,
  timeMs: number,
  fallbackAction: number | null,
  eventId: number | null,
];

/**
 * A plugin session's row as HELLO gave it: [session id, VM, labels (JSON), VMM pid, vCPUs, caps,
 * peer uid, opened ms].
 */
export type SessionRow = [
  sessionId: number,
  vm: string,
  labels: string,
  vmmPid: number,
  vcpuCount: number,
  caps: number,
  peerUid: number,
  openedMs: number,
];

/**
 * A plugin session's row: opened (at HELLO) or closed. Written with the next hand-over, like an
 * APPLIED result, so that the verdict path never waits for the database's write lock for it. A
 * close carries the whole row: a retried segment may land after a later one, and either order
 * leaves the same row.
 */
export type SessionUpdate =
  | ['open', ...SessionRow]
  | ['close', ...SessionRow, closedMs: number, outcome: string, detail: string | null];

/**
 * An action taken on a VM (kill, migrate): 'action' when it starts, 'action-end' with its outcome.
 * The id is given by the store before the row is written (EventStore.recordAction), so neither
 * the action nor the verdict path waits for the row. Each carries the whole row, so either order
 * leaves the outcome. The event that asked for it is (session id, seq) of this boot, or nulls.
 */
export type ActionUpdate = [
  kind: 'action' | 'action-end',
  id: number,
  timeMs: number,
  vm: string,
  action: string,
  rule: string | null,
  outcome: string,
  detail: string | null,
  updatedMs: number,
  sessionId: number | null,
  seq: number | null,
];

/** The source of a policy version that decided events, kept once for `seawall why`. */
export type PolicyUpdate = [kind: 'policy', version: string, name: string, source: string, loadedMs: number];

/** What is written after a segment's rows, in order. */
export type StoreUpdate = AppliedUpdate | SessionUpdate | ActionUpdate | PolicyUpdate;

/** Whether an update is an APPLIED result (the only kind whose first value is a number). */
export const isApplied = (u: StoreUpdate): u is AppliedUpdate => typeof u[0] === 'number';

/** A session's row, as its updates carry it. */
export function sessionRow(s: SessionInfo): SessionRow {
  const labels = JSON.stringify(s.vm.labels);
  return [Number(s.id), s.vm.id, labels, s.vmmPid, s.vcpuCount, s.caps, s.peer.uid, s.openedAtMs];
}

const UPDATE_OP = {
  open: 'session',
  close: 'session',
  action: 'action',
  'action-end': 'action',
  policy: 'policy',
} as const satisfies Record<Exclude<StoreUpdate[0], number>, StoreOp>;

/** What a failed update is reported as (`onError`). */
export function updateOp(u: StoreUpdate): StoreOp {
  return isApplied(u) ? 'applied' : UPDATE_OP[u[0]];
}

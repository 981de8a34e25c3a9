/**
 * An event record's stored columns, in `EVENT_COLUMNS` order, written once for two destinations:
 * the row SQLite binds (`eventValues`), and the write-ahead file's binary record
 * (store/row-codec.ts), which the verdict path writes straight from the record, without building
 * the row or its `hex64` texts. The writer thread reads the record back into the same row.
 */
import type { EventRecord } from '../events/index.js';
import { actionCode, type Decision, describeWouldHave } from '../policies/index.js';
import type { StoreRow } from './inserts.js';
import { COL, type EventValues, hex64, type ReplayKey, type StoredDowngrade } from './rows.js';
import { isHex64, U64_INDEXES } from './stored-values.js';

/** Where the columns go, one call per column, in order. */
export interface ColumnSink {
  /** A text column; null for NULL. */
  text(s: string | null): void;
  /** A numeric column; null for NULL. */
  num(n: number | null): void;
  /** A 64-bit value (`hex64` text among a row's values, an integer in `event_rows`); null for NULL. */
  u64(v: bigint | null): void;
}

const jsonOrNull = (v: readonly unknown[] | null): string | null =>
  v === null || v.length === 0 ? null : JSON.stringify(v);

/**
 * A session's labels are one frozen object for all its events: encoded once, not per event.
 * Weakly held, so a closed session's entry goes with it.
 */
const labelsJson = new WeakMap<object, string>();
function labelsText(labels: Readonly<Record<string, string>>): string {
  let text = labelsJson.get(labels);
  if (text === undefined) {
    text = JSON.stringify(labels);
    labelsJson.set(labels, text);
  }
  return text;
}

/**
 * The `downgrade` entries of a decision: its policy's downgrade, or under a dry-run policy the
 * decision it recorded and did not send. A compiled policy's decisions are shared by its events
 * (policies/compile.ts), so each is made once and its text kept, not made per event on the verdict
 * path; a decision made for one event (the safe default) has neither.
 */
interface DecisionEntries {
  entries: StoredDowngrade[];
  text: string | null;
}
const decisionEntries = new WeakMap<Decision, DecisionEntries>();
const NO_ENTRIES: DecisionEntries = { entries: [], text: null };

function entriesOf(d: Decision): DecisionEntries {
  if (!d.downgrade && !d.dryRun) return NO_ENTRIES;
  let made = decisionEntries.get(d);
  if (made === undefined) {
    const entries: StoredDowngrade[] = [];
    if (d.downgrade) entries.push({ by: 'policy', ...d.downgrade });
    if (d.dryRun) {
      const detail = describeWouldHave(d.dryRun);
      entries.push({
        by: 'dry_run',
        from: actionCode(d.dryRun.wouldHave),
        to: actionCode(d),
        reason: 'dry_run',
        detail,
      });
    }
    made = { entries, text: jsonOrNull(entries) };
    decisionEntries.set(d, made);
  }
  return made;
}

function downgradesOf(r: EventRecord): string | null {
  const own = r.decision === null ? NO_ENTRIES : entriesOf(r.decision);
  if (!r.verdictDowngrade) return own.text;
  return jsonOrNull([...own.entries, { by: 'daemon', ...r.verdictDowngrade }]);
}

/**
 * The columns of one record; `storedNs` is hrtime when its batch is stored (its latency ends
 * there), `id` the row's id.
 */
export function writeColumns(
  r: EventRecord,
  bootId: string,
  storedNs: bigint,
  id: number,
  out: ColumnSink,
): void {
  const e = r.event;
  const m = r.msg;
  const d = r.decision;
  const esr = e.esr;
  out.text(bootId);
  out.num(Number(r.session.id));
  out.num(m.seq);
  out.num(e.timeMs);
  out.text(e.vm.id);
  out.text(labelsText(e.vm.labels));
  out.num(e.vcpu);
  out.text(e.kind);
  out.u64(esr ? esr.raw : null);
  out.num(esr ? esr.ec : null);
  out.num(esr?.abort ? esr.abort.fsc : null);
  out.text(e.fsc);
  out.text(e.abort);
  out.text(e.severity);
  out.text(e.sigbusCode);
  out.u64(m.type === 'sea' ? m.gva : null);
  out.u64(e.gpa);
  out.num(r.replay ? 1 : 0);
  out.num(r.replay ? m.fallbackAction : null);
  out.text(d ? d.action : null);
  out.text(d ? d.rule : null);
  out.text(d ? d.policyVersion : null);
  out.text(downgradesOf(r));
  out.num(r.verdict ? r.verdict.action : null);
  out.num(r.verdict ? r.verdict.flags : null);
  out.num(r.replay ? null : Number(storedNs - r.receivedNs));
  out.text(jsonOrNull(r.nonConforming));
  out.text(r.kernelMismatch === null ? null : JSON.stringify(r.kernelMismatch));
  out.u64(m.timeNs);
  out.num(r.ord ?? m.seq);
  out.num(id);
}

class RowValues implements ColumnSink {
  readonly values: (string | number | null)[] = [];
  text(s: string | null): void {
    this.values.push(s);
  }
  num(n: number | null): void {
    this.values.push(n);
  }
  u64(v: bigint | null): void {
    this.values.push(v === null ? null : hex64(v));
  }
}

/** The row's values for one record (`writeColumns` into an array). */
export function eventValues(r: EventRecord, bootId: string, storedNs: bigint, id: number): EventValues {
  const row = new RowValues();
  writeColumns(r, bootId, storedNs, id, row);
  return row.values as unknown as EventValues;
}

/**
 * A row as the verdict path makes it: its record, id and replay key. Its values are built only
 * when something asks for them — a fault that holds it in memory, a store without a writer
 * thread — since the write-ahead file takes the record itself (`write`). Once built, the values
 * are what it keeps: a row held through a fault does not keep its event's whole record.
 */
export class RecordRow implements StoreRow {
  #record: EventRecord | null;
  #values: EventValues | null = null;

  constructor(
    record: EventRecord,
    readonly bootId: string,
    readonly storedNs: bigint,
    readonly id: number,
    readonly key: ReplayKey,
  ) {
    this.#record = record;
  }

  get values(): EventValues {
    if (this.#values === null) {
      this.#values = eventValues(this.#record as EventRecord, this.bootId, this.storedNs, this.id);
      this.#record = null;
    }
    return this.#values;
  }

  write(out: ColumnSink): void {
    if (this.#record !== null) writeColumns(this.#record, this.bootId, this.storedNs, this.id, out);
    // From the values: a 64-bit value is its hex64 text, and goes as the value again.
    else
      this.values.forEach((v, i) => {
        if (typeof v === 'number') out.num(v);
        else if (v !== null && U64_INDEXES.includes(i) && isHex64(v)) out.u64(BigInt(v));
        else out.text(v);
      });
  }
}

/** A row's event id (null: a row from before ids were given), without building a made row's values. */
export function rowId(row: StoreRow): number | null {
  if (row instanceof RecordRow) return row.id;
  const id = row.values[COL.id];
  return typeof id === 'number' ? id : null;
}

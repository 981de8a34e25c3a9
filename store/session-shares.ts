/**
 * Which sessions the rows written ahead and not yet committed came from: what lets the write-ahead
 * bound stop reading the sessions that fill it instead of stopping the event loop, which every
 * other VM's verdicts wait on (store/write-ahead.ts, docs/security.md).
 *
 * Rows are counted per session id as they are written to the file (`count`), the file's counts
 * become its segment's at the hand-over (`takeFile`, `add`), and a segment's commit takes them off
 * again (`remove`). Rows with no session here (held through a fault and written again) count in
 * the write-ahead's totals only.
 */
import type { EventRecord } from '../events/index.js';

/** Rows per session id. */
export type SessionRows = Map<bigint, number>;

export class SessionShares {
  /** The file's rows per session, until its hand-over. */
  #file: SessionRows = new Map();
  /** Rows in the segments handed over and not yet committed, per session. */
  readonly #inFlight: SessionRows = new Map();

  /** The rows of a batch written to the file: each record not found a duplicate is one. */
  count(batch: readonly EventRecord[]): void {
    // A batch holds runs of one session's events: one map update per run.
    let id: bigint | null = null;
    let n = 0;
    for (const r of batch) {
      if (r.duplicate) continue;
      if (r.session.id !== id) {
        if (id !== null) addTo(this.#file, id, n);
        id = r.session.id;
        n = 0;
      }
      n++;
    }
    if (id !== null) addTo(this.#file, id, n);
  }

  /** The file's counts, for its segment; the next file starts from none. */
  takeFile(): SessionRows {
    const file = this.#file;
    this.#file = new Map();
    return file;
  }

  /** The file's rows went elsewhere (held in memory through a fault): no segment will carry them. */
  dropFile(): void {
    this.#file = new Map();
  }

  /** A segment handed over. */
  add(rows: SessionRows): void {
    for (const [id, n] of rows) addTo(this.#inFlight, id, n);
  }

  /** A segment committed (or given up): its rows are no longer in flight. */
  remove(rows: SessionRows): void {
    for (const [id, n] of rows) {
      const left = (this.#inFlight.get(id) ?? 0) - n;
      if (left > 0) this.#inFlight.set(id, left);
      else this.#inFlight.delete(id);
    }
  }

  /** Rows in flight of one session. */
  of(id: bigint): number {
    return this.#inFlight.get(id) ?? 0;
  }

  /**
   * The sessions with at least their even share of the rows in flight: those a bound holds. One
   * flooding VM is the only one; when many fill it together, those above the average go first
   * and the rest as they pass it. Never empty while any session has rows in flight.
   */
  heaviest(): bigint[] {
    let total = 0;
    for (const n of this.#inFlight.values()) total += n;
    const even = total / Math.max(1, this.#inFlight.size);
    const ids: bigint[] = [];
    for (const [id, n] of this.#inFlight) if (n >= even) ids.push(id);
    return ids;
  }
}

function addTo(rows: SessionRows, id: bigint, n: number): void {
  rows.set(id, (rows.get(id) ?? 0) + n);
}

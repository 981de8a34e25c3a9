/**
 * The rows held through a store fault (store/held-rows.ts `HeldRows`), in the order held and by VM,
 * so that past the bound the rows that go are those of the VMs holding the most, each one's oldest
 * first: one VM's flood through a long fault pushes out its own rows, never a quieter VM's few.
 * Amortised constant time a row: a row that goes leaves a hole in the order, closed once the holes
 * outnumber the rows; a VM is filed under the number of rows it holds once a batch, and moves down
 * one level a row that goes.
 */
import { rowId } from './event-columns.js';
import type { StoreRow } from './inserts.js';

/** One VM's rows: their places in the order held, oldest first, and their lowest id. */
class VmRows {
  places: number[] = [];
  head = 0;
  readonly low = new QueueMin();
  /** The level it is filed under (`#byCount`); its count once the batch is done. */
  filed = 0;
  /** Rows to go from its front, counted before they go. */
  going = 0;
  /** Whether the batch being held has rows of it (its level is set after the batch). */
  touched = false;

  constructor(readonly vm: string) {}

  get count(): number {
    return this.places.length - this.head;
  }
}

/**
 * Rows in the order held, each VM's also in a queue of its own. `trim` takes rows one at a time
 * from a VM holding the most: that brings the VMs above some level down to it (or one above it)
 * and leaves every VM at or under it untouched, the max-min ("water-filling") share of the bound
 * among the VMs held, after every batch.
 */
export class HeldByVm {
  /** The rows in the order held; null where one went. */
  #rows: (StoreRow | null)[] = [];
  #holes = 0;
  readonly #byVm = new Map<string, VmRows>();
  /** The VMs by how many rows each holds, and the most any holds. */
  readonly #byCount = new Map<number, Set<VmRows>>();
  #most = 0;

  get length(): number {
    return this.#rows.length - this.#holes;
  }

  /** Rows at the back, each in its VM's queue. */
  push(rows: readonly StoreRow[]): void {
    const touched: VmRows[] = [];
    let vm: VmRows | null = null;
    for (const row of rows) {
      // A batch is one session's, nearly always: one look-up for it.
      if (vm === null || vm.vm !== row.key.vm) {
        vm = this.#vmOf(row.key.vm);
        if (!vm.touched) {
          vm.touched = true;
          touched.push(vm);
        }
      }
      vm.places.push(this.#rows.length);
      this.#rows.push(row);
      vm.low.push(rowId(row));
    }
    for (const v of touched) {
      v.touched = false;
      this.#file(v, v.count);
    }
  }

  /**
   * Past `max` rows, the excess leaves from the VMs holding the most, each one's oldest first;
   * returns them (by VM, oldest first).
   */
  trim(max: number): StoreRow[] {
    let excess = this.length - max;
    if (excess <= 0) return [];
    const shrunk: VmRows[] = [];
    // Counted first, one row at a time from a VM holding the most; then each VM's go at once.
    let top: VmRows | null = null;
    for (; excess > 0; excess--) {
      // The last one taken from while it is still among the most (a flood's, nearly always).
      if (top === null || top.filed !== this.#most)
        top = this.#byCount.get(this.#most)?.values().next().value as VmRows;
      if (top.going === 0) shrunk.push(top);
      top.going++;
      this.#file(top, top.filed - 1);
    }
    const gone: StoreRow[] = [];
    for (const v of shrunk) {
      const end = v.head + v.going;
      for (let i = v.head; i < end; i++) {
        const at = v.places[i] as number;
        gone.push(this.#rows[at] as StoreRow);
        this.#rows[at] = null;
      }
      this.#holes += v.going;
      v.low.shift(v.going);
      v.head = end;
      v.going = 0;
      // A stream of new VM ids leaves nothing behind.
      if (v.count === 0) this.#byVm.delete(v.vm);
    }
    if (this.#holes > this.length) this.#close();
    return gone;
  }

  /** The lowest id held (Infinity: none), in time of the VMs held whatever the rows' number. */
  lowestId(): number {
    let low = Number.POSITIVE_INFINITY;
    for (const v of this.#byVm.values()) low = Math.min(low, v.low.min);
    return low;
  }

  /** The rows, in the order held. */
  all(): readonly StoreRow[] {
    if (this.#holes > 0) this.#close();
    return this.#rows as StoreRow[];
  }

  clear(): void {
    this.#rows = [];
    this.#holes = 0;
    this.#byVm.clear();
    this.#byCount.clear();
    this.#most = 0;
  }

  #vmOf(name: string): VmRows {
    let v = this.#byVm.get(name);
    if (v === undefined) {
      v = new VmRows(name);
      this.#byVm.set(name, v);
    }
    return v;
  }

  /** Files `v` under `count` rows (none: under no level). */
  #file(v: VmRows, count: number): void {
    const from = this.#byCount.get(v.filed);
    if (v.filed > 0 && from !== undefined) {
      from.delete(v);
      if (from.size === 0) {
        this.#byCount.delete(v.filed);
        // Emptied at the top: `v`, filed lower, is among the most now.
        if (v.filed === this.#most) this.#most = count;
      }
    }
    v.filed = count;
    if (count === 0) return;
    let to = this.#byCount.get(count);
    if (to === undefined) {
      to = new Set();
      this.#byCount.set(count, to);
    }
    to.add(v);
    if (count > this.#most) this.#most = count;
  }

  /** Closes the holes: the rows move to the front, and each VM's places with them. */
  #close(): void {
    const rows: StoreRow[] = [];
    for (const v of this.#byVm.values()) {
      v.places = [];
      v.head = 0;
    }
    for (const row of this.#rows) {
      if (row === null) continue;
      (this.#byVm.get(row.key.vm) as VmRows).places.push(rows.length);
      rows.push(row);
    }
    this.#rows = rows;
    this.#holes = 0;
  }
}

/**
 * The least of a queue of numbers that come at the back and go from the front: the numbers each
 * less than every one that came after it, with their places; amortised constant time a number.
 */
class QueueMin {
  readonly #ids: number[] = [];
  readonly #places: number[] = [];
  #head = 0;
  /** Places given (the next number's), and the place of the queue's front. */
  #pushed = 0;
  #front = 0;

  get min(): number {
    return this.#head < this.#ids.length ? (this.#ids[this.#head] as number) : Number.POSITIVE_INFINITY;
  }

  /** A number at the back (null: a place with none). */
  push(id: number | null): void {
    const place = this.#pushed++;
    if (id === null) return;
    while (this.#ids.length > this.#head && (this.#ids[this.#ids.length - 1] as number) >= id) {
      this.#ids.pop();
      this.#places.pop();
    }
    this.#ids.push(id);
    this.#places.push(place);
  }

  /** The first `n` go. */
  shift(n: number): void {
    this.#front += n;
    while (this.#head < this.#ids.length && (this.#places[this.#head] as number) < this.#front) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#ids.length) {
      this.#ids.splice(0, this.#head);
      this.#places.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

/**
 * The entries waiting for journald (journal.ts), in the order logged, the per-event ones also by
 * VM, so that once the per-event places are full an entry of a VM holding fewer of them than
 * another takes the place of the oldest of a VM holding the most: the VMs' max-min
 * ("water-filling") shares of those places, whatever the number of VMs that flood. Constant time
 * an entry: a list linked both ways in order, each VM's entries a chain of their own through it
 * (its oldest first), and the VMs in lists by how many they hold.
 */

interface Waiting<T> {
  readonly item: T;
  readonly vm: VmWaiting<T> | null;
  prev: Waiting<T> | null;
  next: Waiting<T> | null;
  /** The next of the same VM's. */
  nextOfVm: Waiting<T> | null;
}

/** One VM's per-event entries waiting, and its place among the VMs holding as many. */
interface VmWaiting<T> {
  readonly vm: string;
  count: number;
  oldest: Waiting<T> | null;
  newest: Waiting<T> | null;
  prevAtLevel: VmWaiting<T> | null;
  nextAtLevel: VmWaiting<T> | null;
}

export class JournalQueue<T> {
  #front: Waiting<T> | null = null;
  #back: Waiting<T> | null = null;
  #length = 0;
  /** Only VMs with an entry waiting: at most as many as entries wait. */
  readonly #byVm = new Map<string, VmWaiting<T>>();
  /** `#levels[n]`: a VM holding n entries, the others holding n linked from it. */
  readonly #levels: (VmWaiting<T> | null)[] = [null];
  #most = 0;

  /** Entries waiting. */
  get length(): number {
    return this.#length;
  }

  /** Per-event entries of `vm` waiting (tests). */
  heldBy(vm: string): number {
    return this.#byVm.get(vm)?.count ?? 0;
  }

  /** Appends `item`; one of `vm`'s per-event entries when `vm` is given. */
  push(item: T, vm?: string): void {
    let v: VmWaiting<T> | null = null;
    if (vm !== undefined) {
      v = this.#byVm.get(vm) ?? null;
      if (v === null) {
        v = { vm, count: 0, oldest: null, newest: null, prevAtLevel: null, nextAtLevel: null };
        this.#byVm.set(vm, v);
      }
    }
    const w: Waiting<T> = { item, vm: v, prev: this.#back, next: null, nextOfVm: null };
    if (this.#back === null) this.#front = w;
    else this.#back.next = w;
    this.#back = w;
    this.#length++;
    if (v === null) return;
    if (v.newest === null) v.oldest = w;
    else v.newest.nextOfVm = w;
    v.newest = w;
    this.#refile(v, v.count + 1);
  }

  /** Takes the front entry (the oldest); undefined when none waits. */
  shift(): T | undefined {
    const w = this.#front;
    if (w === null) return undefined;
    // The oldest of all is its VM's oldest.
    this.#remove(w);
    return w.item;
  }

  /**
   * Removes and returns the oldest per-event entry of a VM holding the most of them, when `vm`
   * holds fewer than that VM (the caller's entry of `vm` then takes its place); undefined when no
   * VM holds more than `vm` does.
   */
  dropForFewer(vm: string): T | undefined {
    const held = this.#byVm.get(vm)?.count ?? 0;
    if (held >= this.#most) return undefined;
    const oldest = (this.#levels[this.#most] as VmWaiting<T>).oldest as Waiting<T>;
    this.#remove(oldest);
    return oldest.item;
  }

  /** Unlinks `w`, which is the oldest of its VM's when it has one. */
  #remove(w: Waiting<T>): void {
    if (w.prev === null) this.#front = w.next;
    else w.prev.next = w.next;
    if (w.next === null) this.#back = w.prev;
    else w.next.prev = w.prev;
    this.#length--;
    const v = w.vm;
    if (v === null) return;
    v.oldest = w.nextOfVm;
    if (v.oldest === null) {
      v.newest = null;
      this.#byVm.delete(v.vm);
    }
    this.#refile(v, v.count - 1);
  }

  /** Moves `v` from the VMs holding its count to those holding `count` (none: to no level). */
  #refile(v: VmWaiting<T>, count: number): void {
    if (v.count > 0) {
      if (v.prevAtLevel === null) this.#levels[v.count] = v.nextAtLevel;
      else v.prevAtLevel.nextAtLevel = v.nextAtLevel;
      if (v.nextAtLevel !== null) v.nextAtLevel.prevAtLevel = v.prevAtLevel;
      v.prevAtLevel = null;
      v.nextAtLevel = null;
    }
    // Emptied at the top: `v`, one lower or one higher, is among the most now.
    if (v.count === this.#most && this.#levels[v.count] == null) this.#most = count;
    if (count > this.#most) this.#most = count;
    v.count = count;
    if (count === 0) return;
    const first = this.#levels[count] ?? null;
    v.nextAtLevel = first;
    if (first !== null) first.prevAtLevel = v;
    this.#levels[count] = v;
  }
}

import { assertOpenLabel } from './label-values.js';

/** Bounds on the VMs whose series are kept; see docs/metrics.md "Cardinality". */
export interface VmSeriesBounds {
  /** How long a departed VM's series stay exported after its last sighting, in milliseconds. */
  readonly ttlMs: number;
  /** Most VMs tracked at once (live and departed together). */
  readonly maxVms: number;
}

/** What the tracker asks of its owner: build a VM's per-VM state, and drop its series. */
export interface VmSeriesHooks<T> {
  create(vm: string): T;
  /** Remove every series of `vm` from the registry. `evicted` is true when the bound forced it. */
  release(vm: string, state: T, evicted: boolean): void;
}

interface Entry<T> {
  readonly state: T;
  /** Milliseconds on the injected clock of the departure (departed VMs only). */
  departedAt: number;
}

/**
 * Tracks which VMs have series, in recency order, and decides when their series go.
 *
 * - Liveness comes only from sessions, counted per VM: a VM is *live* from a `connect()` (a
 *   session opened) until as many `depart()`s (they ended). A VMM that reconnects at once has its
 *   new session admitted while the old one is still closing; the old one's end leaves it live.
 *   Live VMs never expire on time alone: a quiet VM's poisoned-page gauge is still true, and
 *   dropping a counter that will be incremented again would hide that increment from `increase()`.
 * - A *departed* VM's series stay for `ttlMs` after its last sighting, so Prometheus scrapes the
 *   final values and rate windows see the last increase, then `sweep()` removes them.
 * - Recording for a VM without a session — a departed one, or one recorded after its session
 *   ended (replays still queued when the plugin went away) — refreshes its departure time and
 *   never makes it live: only a new session does.
 * - At `maxVms`, admitting a new VM first evicts the least recently seen departed VM, or, if none,
 *   the least recently seen live VM.
 *
 * Both maps are kept in recency order by re-inserting on every sighting (a JS Map iterates in
 * insertion order), so eviction and sweeping read from the front and stop at the first keeper:
 * per-event work is one lookup, plus one delete/set unless the VM is already the most recently
 * seen (a storm from one VM, or a batch of one VM's events). No clock is read for a live VM: only
 * a departure's time is kept (for the TTL); a live VM's recency is its place in the map.
 */
export class VmSeriesTracker<T> {
  readonly #live = new Map<string, Entry<T>>();
  readonly #departed = new Map<string, Entry<T>>();
  readonly #bounds: VmSeriesBounds;
  readonly #hooks: VmSeriesHooks<T>;
  /** Open sessions of each VM that has any: the only source of liveness. */
  readonly #sessions = new Map<string, number>();
  readonly #now: () => number;
  /** The live VM last (re)inserted: the back of `#live`, where a sighting would put it again. */
  #newest: string | undefined;

  /** `now` (milliseconds) dates a sighting of a VM without a session, which counts as a departure. */
  constructor(bounds: VmSeriesBounds, hooks: VmSeriesHooks<T>, now: () => number) {
    this.#bounds = bounds;
    this.#hooks = hooks;
    this.#now = now;
  }

  /** Number of VMs with series (live + departed); never above `maxVms`. */
  get size(): number {
    return this.#live.size + this.#departed.size;
  }

  /** Number of VMs that have not departed. */
  get liveCount(): number {
    return this.#live.size;
  }

  /** Marks `vm` seen and returns its state, admitting it (and evicting) if it is new. Never makes it live. */
  touch(vm: string): T {
    return this.touchLive(vm) ?? this.#admit(vm);
  }

  /** Marks `vm` seen if it is live and returns its state; undefined (nothing marked) if it is not. */
  touchLive(vm: string): T | undefined {
    const entry = this.#live.get(vm);
    if (entry === undefined) return undefined;
    if (vm !== this.#newest) {
      this.#live.delete(vm);
      this.#live.set(vm, entry);
      this.#newest = vm;
    }
    return entry.state;
  }

  /** Whether `vm` currently has series. Does not count as a sighting. */
  has(vm: string): boolean {
    return this.#live.has(vm) || this.#departed.has(vm);
  }

  /** A session of `vm` opened: the VM is live (its series, if it has any, no longer expire). */
  connect(vm: string): void {
    this.#sessions.set(vm, (this.#sessions.get(vm) ?? 0) + 1);
    const entry = this.#departed.get(vm);
    if (entry === undefined) return;
    this.#departed.delete(vm);
    this.#live.set(vm, entry);
    this.#newest = vm;
  }

  /**
   * A session of `vm` ended. When it was the VM's last open one, marks it departed at `now`; its
   * series expire `ttlMs` after its last sighting. A VM without series has nothing to expire.
   */
  depart(vm: string, now: number): void {
    const open = this.#sessions.get(vm) ?? 0;
    if (open > 1) {
      this.#sessions.set(vm, open - 1);
      return;
    }
    this.#sessions.delete(vm);
    const entry = this.#live.get(vm);
    if (entry === undefined) return;
    this.#live.delete(vm);
    if (vm === this.#newest) this.#newest = undefined;
    entry.departedAt = now;
    this.#departed.set(vm, entry);
  }

  /** Removes the series of departed VMs last seen at least `ttlMs` before `now`; returns how many. */
  sweep(now: number): number {
    const cutoff = now - this.#bounds.ttlMs;
    let removed = 0;
    for (const [vm, entry] of this.#departed) {
      if (entry.departedAt > cutoff) break;
      this.#departed.delete(vm);
      this.#hooks.release(vm, entry.state, false);
      removed++;
    }
    return removed;
  }

  #evictOne(): void {
    const from = this.#departed.size > 0 ? this.#departed : this.#live;
    const oldest = from.entries().next();
    if (oldest.done === true) return;
    const [vm, entry] = oldest.value;
    from.delete(vm);
    if (vm === this.#newest) this.#newest = undefined;
    this.#hooks.release(vm, entry.state, true);
  }

  /**
   * A VM without a live entry: departed (seen again, so its departure is dated now), or new (then
   * counted against `maxVms`, and live only if a session of it is open).
   */
  #admit(vm: string): T {
    let entry = this.#departed.get(vm);
    if (entry !== undefined) {
      this.#departed.delete(vm);
    } else {
      assertOpenLabel('vm', vm);
      if (this.size >= this.#bounds.maxVms) this.#evictOne();
      entry = { state: this.#hooks.create(vm), departedAt: 0 };
    }
    if (this.#sessions.has(vm)) {
      this.#live.set(vm, entry);
      this.#newest = vm;
    } else {
      entry.departedAt = this.#now();
      this.#departed.set(vm, entry);
    }
    return entry.state;
  }
}

/**
 * Rate-window and repeat-page state, kept outside any compiled policy so a reload keeps every
 * window. Bounded twice over:
 * - each key (a VM, a (VM, page) pair, the host) keeps a ring of its latest event times, as
 *   many as the largest rate threshold of any policy compiled against this state;
 * - at most `maxKeys` VMs and `maxKeys` pages are kept; past that, the least recently seen key
 *   is evicted and counted in `evictions`. An evicted VM's or page's windows start again from
 *   zero, and an evicted page is no longer a repeat.
 * Time is the event's own `timeMs`, never the clock, so replays and tests are deterministic.
 */
import type { PolicyEvent } from './decision.js';
import { PolicyError } from './errors.js';
import type { RateScope } from './schema.js';

export const DEFAULT_MAX_KEYS = 65_536;
const INITIAL_RING = 4;

/** A fixed-capacity ring of event times (ms); the oldest is overwritten when full. */
class TimeRing {
  times: Float64Array;
  head = 0;
  size = 0;

  constructor(capacity: number) {
    this.times = new Float64Array(capacity);
  }

  push(t: number, capacity: number): void {
    if (this.times.length < capacity) this.grow(capacity);
    this.times[this.head] = t;
    this.head = (this.head + 1) % this.times.length;
    if (this.size < this.times.length) this.size++;
  }

  /** Times in (now - windowMs, now]; the ring holds few entries, and arrival order may differ from time order. */
  countWithin(now: number, windowMs: number): number {
    const lo = now - windowMs;
    let n = 0;
    for (let i = 0; i < this.size; i++) {
      const t = this.times[i] as number;
      if (t > lo && t <= now) n++;
    }
    return n;
  }

  private grow(capacity: number): void {
    const next = new Float64Array(capacity);
    const len = this.times.length;
    for (let i = 0; i < this.size; i++)
      next[i] = this.times[(this.head - this.size + i + len) % len] as number;
    this.times = next;
    this.head = this.size % capacity;
  }
}

export interface PolicyStateOptions {
  /** Most VMs and most (VM, page) pairs kept; default 65,536 each. */
  maxKeys?: number;
}

export interface PolicyStateStats {
  maxKeys: number;
  ringCapacity: number;
  vms: number;
  pages: number;
  /** Keys dropped at the bound since this state was created, by kind. */
  evictions: { vm: number; page: number };
}

/**
 * What rate and repeat matchers read, and what `decide` records into. Create one per daemon,
 * pass it to every `compilePolicy` (reloads included), and rebuild it at start by calling
 * `observe` on stored events, oldest first.
 */
export class PolicyState {
  private maxKeysValue: number;
  private ringCapacityValue = INITIAL_RING;
  private readonly vms = new Map<string, TimeRing>();
  private readonly pages = new Map<string, TimeRing>();
  private readonly host = new TimeRing(INITIAL_RING);
  private readonly evicted = { vm: 0, page: 0 };
  // The page key of the event last asked about: repeat and page-rate matchers and `observe`
  // all need it for the same event, so it is built once.
  private keyVm: string | null = null;
  private keyGpa: bigint | null = null;
  private keyValue: string | null = null;

  constructor(options: PolicyStateOptions = {}) {
    this.maxKeysValue = PolicyState.checkMaxKeys(options.maxKeys ?? DEFAULT_MAX_KEYS);
  }

  private static checkMaxKeys(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1)
      throw new PolicyError('SEAWALL_POLICY_INVALID_OPTION', [
        { code: 'schema', path: 'maxKeys', line: 0, message: `maxKeys must be a positive integer, got ${n}` },
      ]);
    return n;
  }

  get maxKeys(): number {
    return this.maxKeysValue;
  }

  get ringCapacity(): number {
    return this.ringCapacityValue;
  }

  /** Grows every ring to hold `count` times (a policy's largest threshold); never shrinks. */
  reserve(count: number): void {
    if (count > this.ringCapacityValue) this.ringCapacityValue = count;
  }

  /** Changes the key bound; lowering it evicts (and counts) the least recently seen keys now. */
  setMaxKeys(n: number): void {
    this.maxKeysValue = PolicyState.checkMaxKeys(n);
    this.trim(this.vms, 'vm');
    this.trim(this.pages, 'page');
  }

  /** Records an event without deciding anything: the daemon's start-up replay uses this. */
  observe(event: PolicyEvent): void {
    const t = event.timeMs;
    const cap = this.ringCapacityValue;
    this.host.push(t, cap);
    this.touch(this.vms, event.vm.id, 'vm').push(t, cap);
    const pk = this.pageKey(event);
    if (pk !== null) this.touch(this.pages, pk, 'page').push(t, cap);
  }

  /** Stored events in `scope` for this event within (timeMs - windowMs, timeMs]; the event itself is not counted. */
  countWithin(scope: RateScope, event: PolicyEvent, windowMs: number): number {
    let ring: TimeRing | undefined;
    if (scope === 'host') ring = this.host;
    else if (scope === 'vm') ring = this.vms.get(event.vm.id);
    else {
      const pk = this.pageKey(event);
      ring = pk === null ? undefined : this.pages.get(pk);
    }
    return ring ? ring.countWithin(event.timeMs, windowMs) : 0;
  }

  /** Whether this VM reported this GPA page before (and the pair is still within the bound). */
  seenPage(event: PolicyEvent): boolean {
    const pk = this.pageKey(event);
    return pk !== null && this.pages.has(pk);
  }

  stats(): PolicyStateStats {
    return {
      maxKeys: this.maxKeysValue,
      ringCapacity: this.ringCapacityValue,
      vms: this.vms.size,
      pages: this.pages.size,
      evictions: { ...this.evicted },
    };
  }

  private pageKey(event: PolicyEvent): string | null {
    if (event.gpa === null) return null;
    if (event.gpa !== this.keyGpa || event.vm.id !== this.keyVm) {
      this.keyVm = event.vm.id;
      this.keyGpa = event.gpa;
      this.keyValue = `${event.vm.id}\u0000${(event.gpa >> 12n).toString(16)}`;
    }
    return this.keyValue;
  }

  /** Map order is insertion order: re-inserting on use keeps the least recently seen first. */
  private touch(map: Map<string, TimeRing>, key: string, kind: 'vm' | 'page'): TimeRing {
    let ring = map.get(key);
    if (ring) {
      map.delete(key);
    } else {
      ring = new TimeRing(Math.min(this.ringCapacityValue, INITIAL_RING));
    }
    map.set(key, ring);
    this.trim(map, kind);
    return ring;
  }

  private trim(map: Map<string, TimeRing>, kind: 'vm' | 'page'): void {
    while (map.size > this.maxKeysValue) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
      this.evicted[kind]++;
    }
  }
}

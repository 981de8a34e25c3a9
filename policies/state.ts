/**
 * Rate-window and repeat-page state, kept outside any compiled policy so a reload keeps every
 * window. Bounded per VM, so that no VM — and no stream of fresh VM ids — can push another VM's
 * history out and so change the decisions taken for it:
 * - each key (a VM, one of its pages, the host) keeps a ring of its latest event times, as many as
 *   the largest rate threshold of any policy compiled against this state (grown only as events
 *   arrive, so a large threshold costs memory only where events are);
 * - each VM keeps at most `maxPagesPerVm` pages; past that its own least recently seen page is
 *   evicted (counted in `evictions.page`): a flood of pages costs only the flooding VM;
 * - at most `maxKeys` VMs are kept; past that the least recently seen VM *without a live session*
 *   is evicted (counted in `evictions.vm`). The daemon pins a VM while its session is open
 *   (`pin`/`unpin`), so fresh ids only ever push out VMs that have gone away.
 * Time is the event's own `timeMs`, never the clock, so replays and tests are deterministic.
 */
import type { PolicyEvent } from './decision.js';
import { PolicyError } from './errors.js';
import type { RateScope } from './schema.js';

export const DEFAULT_MAX_KEYS = 65_536;
export const DEFAULT_MAX_PAGES_PER_VM = 4096;
const INITIAL_RING = 4;

/** A ring of event times (ms) up to a capacity; the oldest is overwritten when full. */
class TimeRing {
  times: Float64Array;
  head = 0;
  size = 0;

  constructor(capacity: number) {
    this.times = new Float64Array(capacity);
  }

  push(t: number, capacity: number): void {
    // Doubling, not straight to `capacity`: a ring holds what its key's events need.
    if (this.size === this.times.length && this.times.length < capacity)
      this.grow(Math.min(capacity, this.times.length * 2));
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

/** One VM's history: its own ring and its pages' rings, most recently seen page last. */
interface VmHistory {
  ring: TimeRing;
  pages: Map<bigint, TimeRing>;
}

export interface PolicyStateOptions {
  /** Most VMs kept (VMs with a live session are never evicted); default 65,536. */
  maxKeys?: number;
  /** Most pages kept per VM; default 4,096. */
  maxPagesPerVm?: number;
}

export interface PolicyStateStats {
  maxKeys: number;
  maxPagesPerVm: number;
  ringCapacity: number;
  vms: number;
  /** Pages kept, over all VMs. */
  pages: number;
  /** VMs pinned by a live session. */
  pinned: number;
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
  private readonly maxPagesPerVm: number;
  private ringCapacityValue = INITIAL_RING;
  private readonly vms = new Map<string, VmHistory>();
  /** Live sessions per VM id: a pinned VM is never evicted. */
  private readonly pins = new Map<string, number>();
  private readonly host = new TimeRing(INITIAL_RING);
  private readonly evicted = { vm: 0, page: 0 };
  private pageCount = 0;

  constructor(options: PolicyStateOptions = {}) {
    this.maxKeysValue = PolicyState.checkBound('maxKeys', options.maxKeys ?? DEFAULT_MAX_KEYS);
    this.maxPagesPerVm = PolicyState.checkBound(
      'maxPagesPerVm',
      options.maxPagesPerVm ?? DEFAULT_MAX_PAGES_PER_VM,
    );
  }

  private static checkBound(name: string, n: number): number {
    if (!Number.isSafeInteger(n) || n < 1)
      throw new PolicyError('SEAWALL_POLICY_INVALID_OPTION', [
        { code: 'schema', path: name, line: 0, message: `${name} must be a positive integer, got ${n}` },
      ]);
    return n;
  }

  get maxKeys(): number {
    return this.maxKeysValue;
  }

  get ringCapacity(): number {
    return this.ringCapacityValue;
  }

  /** Grows every ring's capacity to `count` times (a policy's largest threshold); never shrinks. */
  reserve(count: number): void {
    if (count > this.ringCapacityValue) this.ringCapacityValue = count;
  }

  /** Changes the VM bound; lowering it evicts (and counts) the least recently seen unpinned VMs now. */
  setMaxKeys(n: number): void {
    this.maxKeysValue = PolicyState.checkBound('maxKeys', n);
    this.trimVms();
  }

  /** A session for `vmId` opened: its history is kept whatever other VMs do. */
  pin(vmId: string): void {
    this.pins.set(vmId, (this.pins.get(vmId) ?? 0) + 1);
  }

  /** A session for `vmId` closed: once none is left, its history may be evicted again. */
  unpin(vmId: string): void {
    const n = (this.pins.get(vmId) ?? 0) - 1;
    if (n > 0) this.pins.set(vmId, n);
    else {
      this.pins.delete(vmId);
      this.trimVms();
    }
  }

  /** Records an event without deciding anything: the daemon's start-up replay uses this. */
  observe(event: PolicyEvent): void {
    this.observeAt(event.vm.id, event.timeMs, event.gpa);
  }

  /** `observe` with only what the state keeps: the start-up replay needs no whole event per row. */
  observeAt(vmId: string, timeMs: number, gpa: bigint | null): void {
    const cap = this.ringCapacityValue;
    this.host.push(timeMs, cap);
    const vm = this.touchVm(vmId);
    vm.ring.push(timeMs, cap);
    if (gpa !== null) this.touchPage(vm, gpa >> 12n).push(timeMs, cap);
  }

  /** Stored events in `scope` for this event within (timeMs - windowMs, timeMs]; the event itself is not counted. */
  countWithin(scope: RateScope, event: PolicyEvent, windowMs: number): number {
    let ring: TimeRing | undefined;
    if (scope === 'host') ring = this.host;
    else if (scope === 'vm') ring = this.vms.get(event.vm.id)?.ring;
    else ring = event.gpa === null ? undefined : this.vms.get(event.vm.id)?.pages.get(event.gpa >> 12n);
    return ring ? ring.countWithin(event.timeMs, windowMs) : 0;
  }

  /** Whether this VM reported this GPA page before (and the page is still within the VM's bound). */
  seenPage(event: PolicyEvent): boolean {
    return event.gpa !== null && this.vms.get(event.vm.id)?.pages.has(event.gpa >> 12n) === true;
  }

  stats(): PolicyStateStats {
    return {
      maxKeys: this.maxKeysValue,
      maxPagesPerVm: this.maxPagesPerVm,
      ringCapacity: this.ringCapacityValue,
      vms: this.vms.size,
      pages: this.pageCount,
      pinned: this.pins.size,
      evictions: { ...this.evicted },
    };
  }

  /** Map order is insertion order: re-inserting on use keeps the least recently seen first. */
  private touchVm(id: string): VmHistory {
    let vm = this.vms.get(id);
    if (vm) this.vms.delete(id);
    else vm = { ring: new TimeRing(Math.min(this.ringCapacityValue, INITIAL_RING)), pages: new Map() };
    this.vms.set(id, vm);
    this.trimVms();
    return vm;
  }

  private touchPage(vm: VmHistory, page: bigint): TimeRing {
    let ring = vm.pages.get(page);
    if (ring) vm.pages.delete(page);
    else {
      ring = new TimeRing(Math.min(this.ringCapacityValue, INITIAL_RING));
      this.pageCount++;
      if (vm.pages.size >= this.maxPagesPerVm) {
        // This VM's own least recently seen page makes room: nobody else's.
        vm.pages.delete(vm.pages.keys().next().value as bigint);
        this.pageCount--;
        this.evicted.page++;
      }
    }
    vm.pages.set(page, ring);
    return ring;
  }

  /** Evicts the least recently seen unpinned VMs while over the bound. */
  private trimVms(): void {
    if (this.vms.size <= this.maxKeysValue) return;
    for (const [id, vm] of this.vms) {
      if (this.vms.size <= this.maxKeysValue) return;
      if (this.pins.has(id)) continue;
      this.vms.delete(id);
      this.pageCount -= vm.pages.size;
      this.evicted.vm++;
    }
  }
}

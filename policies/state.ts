/**
 * Rate-window and repeat-page state, kept outside any compiled policy so a reload keeps every
 * window. Bounded per VM, so that no VM — and no stream of fresh VM ids — can push another VM's
 * history out and so change the decisions taken for it:
 * - each key (a VM, one of its pages, the host) keeps a ring of its latest event times — latest by
 *   time, not by arrival — as many as the largest rate threshold of any policy compiled against
 *   this state (grown only as events arrive, so a large threshold costs memory only where events
 *   are);
 * - each VM keeps at most `maxPagesPerVm` pages; past that its own least recently seen page is
 *   evicted (counted in `evictions.page`): a flood of pages costs only the flooding VM;
 * - at most `maxKeys` VMs are kept; past that the least recently seen VM *without a live session*
 *   is evicted (counted in `evictions.vm`). The daemon pins a VM while its session is open
 *   (`pin`/`unpin`), so fresh ids only ever push out VMs that have gone away; the VM an event is
 *   for is never evicted by it (with every other VM pinned, it passes the bound until one can go);
 * - at most `maxKeys` pages are kept over all VMs; past that, too, VMs without a live session go
 *   first, then the adding VM's own least recently seen pages.
 * Time is the event's own `timeMs`, never the clock, so replays and tests are deterministic.
 */
import type { PolicyEvent } from './decision.js';
import { PolicyError } from './errors.js';
import type { RateScope } from './schema.js';

export const DEFAULT_MAX_KEYS = 65_536;
export const DEFAULT_MAX_PAGES_PER_VM = 4096;
const INITIAL_RING = 4;

/**
 * A key's latest event times (ms), up to a capacity, kept in time order (oldest first) in a ring.
 * When full, the oldest *time* goes, not the oldest arrival, so a time out of order — a replay,
 * dated when it happened — can never push a more recent event out of a window. A time in order
 * (every live event: the daemon's clock) is appended in O(1); one out of order moves the kept
 * times older than it one slot down (a memmove; none for a replay older than them all); a count
 * is one or two binary searches.
 */
class TimeRing {
  times: Float64Array;
  /** Slot of the oldest time. */
  start = 0;
  size = 0;

  constructor(capacity: number) {
    this.times = new Float64Array(capacity);
  }

  push(t: number, capacity: number): void {
    if (Number.isNaN(t)) return; // would break the order; it could never be counted anyway
    // Doubling, not straight to `capacity`: a ring holds what its key's events need.
    if (this.size === this.times.length && this.times.length < capacity)
      this.grow(Math.min(capacity, this.times.length * 2));
    const times = this.times;
    const len = times.length;
    if (this.size === 0 || t >= (times[this.slot(this.size - 1)] as number)) {
      if (this.size < len) times[this.slot(this.size++)] = t;
      else {
        times[this.start] = t;
        this.start = this.start + 1 === len ? 0 : this.start + 1;
      }
      return;
    }
    // Out of order: `p` kept times are at or before t; t goes right after them, and they move
    // one slot towards the start (one memmove or two): into the oldest's slot when the ring is
    // full, into the free slot before the start when not.
    const p = this.countAtOrBefore(t);
    if (this.size === len) {
      if (p === 0) return; // older than every kept time: not among the latest
      this.shiftDown(1, p - 1);
      times[this.slot(p - 1)] = t;
      return;
    }
    this.start = this.start === 0 ? len - 1 : this.start - 1;
    this.shiftDown(1, p);
    times[this.slot(p)] = t;
    this.size++;
  }

  /** Times in (now - windowMs, now]. */
  countWithin(now: number, windowMs: number): number {
    if (this.size === 0) return 0;
    const newest = this.times[this.slot(this.size - 1)] as number;
    const upTo = newest <= now ? this.size : this.countAtOrBefore(now);
    return upTo - this.countAtOrBefore(now - windowMs);
  }

  /** How many kept times are at or before `t`: a binary search over the ordered ring. */
  private countAtOrBefore(t: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.times[this.slot(mid)] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Moves the `n` times from the `i`th oldest (i >= 1) one slot towards the oldest. */
  private shiftDown(i: number, n: number): void {
    const times = this.times;
    const len = times.length;
    while (n > 0) {
      const from = this.slot(i);
      const run = from === 0 ? 1 : Math.min(n, len - from);
      if (from === 0) times[len - 1] = times[0] as number;
      else times.copyWithin(from - 1, from, from + run);
      i += run;
      n -= run;
    }
  }

  /** The slot of the `i`th oldest time. */
  private slot(i: number): number {
    const j = this.start + i;
    return j >= this.times.length ? j - this.times.length : j;
  }

  private grow(capacity: number): void {
    const next = new Float64Array(capacity);
    for (let i = 0; i < this.size; i++) next[i] = this.times[this.slot(i)] as number;
    this.times = next;
    this.start = 0;
  }
}

/** One VM's history: its own ring and its pages' rings, most recently seen page last. */
interface VmHistory {
  ring: TimeRing;
  pages: Map<bigint, TimeRing>;
  /**
   * The page seen last, which is already last in `pages`: a storm repeats one page, and each
   * repeat would otherwise pay a delete and a set of a BigInt key to stay where it is. Only a
   * new page (or the page bound lowered) can evict this VM's pages, and then a new page is the newest.
   */
  newest: { page: bigint; ring: TimeRing } | null;
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
  /** The VM `touchVm` put last in `vms` (it may have been evicted since). */
  private lastVm: string | null = null;
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

  /**
   * Changes the bound; lowering it evicts (and counts) now: the least recently seen unpinned VMs
   * while over either bound, then, while there are still more pages than the bound, the least
   * recently seen pages of the least recently seen VMs, live or not.
   */
  setMaxKeys(n: number): void {
    this.maxKeysValue = PolicyState.checkBound('maxKeys', n);
    this.trimVms();
    const over = () => this.pageCount > this.maxKeysValue;
    if (!over()) return;
    this.evictVms(over);
    for (const vm of this.vms.values()) {
      while (over() && vm.pages.size > 0) this.evictPage(vm);
      if (!over()) return;
    }
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

  /**
   * Map order is insertion order: re-inserting on use keeps the least recently seen first. The VM
   * seen last is last already, and a storm (or a batch of one VM's events) moves nothing.
   */
  private touchVm(id: string): VmHistory {
    let vm = this.vms.get(id);
    if (vm !== undefined && this.lastVm === id) return vm;
    this.lastVm = id;
    if (vm) this.vms.delete(id);
    else
      vm = {
        ring: new TimeRing(Math.min(this.ringCapacityValue, INITIAL_RING)),
        pages: new Map(),
        newest: null,
      };
    this.vms.set(id, vm);
    // Never this VM: evicted here, it would record its page into a history nobody holds (and
    // count it for good). With every other VM live, the bound is passed by this one until one can go.
    this.trimVms(vm);
    return vm;
  }

  private touchPage(vm: VmHistory, page: bigint): TimeRing {
    const newest = vm.newest;
    if (newest !== null && newest.page === page && this.pageCount <= this.maxKeysValue) return newest.ring;
    let ring = vm.pages.get(page);
    if (ring) vm.pages.delete(page);
    else {
      ring = new TimeRing(Math.min(this.ringCapacityValue, INITIAL_RING));
      this.pageCount++;
      // This VM's own least recently seen page makes room: nobody else's.
      if (vm.pages.size >= this.maxPagesPerVm) this.evictPage(vm);
    }
    vm.pages.set(page, ring);
    vm.newest = { page, ring };
    // As many pages as VMs over all: past it the least recently seen VMs without a live session
    // go, as past the VM bound; when every other VM has one, this VM's own oldest page.
    if (this.pageCount > this.maxKeysValue) {
      this.evictVms(() => this.pageCount > this.maxKeysValue, vm);
      if (this.pageCount > this.maxKeysValue && vm.pages.size > 1) this.evictPage(vm);
    }
    return ring;
  }

  private evictPage(vm: VmHistory): void {
    const page = vm.pages.keys().next().value as bigint;
    vm.pages.delete(page);
    if (vm.newest?.page === page) vm.newest = null;
    this.pageCount--;
    this.evicted.page++;
  }

  /** Evicts the least recently seen unpinned VMs (never `keep`) while over the VM bound. */
  private trimVms(keep?: VmHistory): void {
    if (this.vms.size > this.maxKeysValue) this.evictVms(() => this.vms.size > this.maxKeysValue, keep);
  }

  /** Evicts the least recently seen unpinned VMs (never `keep`) while `over()`. */
  private evictVms(over: () => boolean, keep?: VmHistory): void {
    for (const [id, vm] of this.vms) {
      if (!over()) return;
      if (this.pins.has(id) || vm === keep) continue;
      this.vms.delete(id);
      this.pageCount -= vm.pages.size;
      this.evicted.vm++;
    }
  }
}

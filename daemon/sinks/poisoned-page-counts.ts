/**
 * The distinct poisoned guest pages of each VM, for the `seawall_poisoned_pages{vm}` gauge: a page
 * counts once however often it fails, exactly as the store's poisoned_pages table counts it (SEA
 * and SIGBUS events with a known GPA; never pruned). Seeded from the store at start so the gauge
 * goes on from the stored count after a restart. Bounded: past `maxPagesPerVm` pages of one VM, or `maxPages` in all, a
 * page not yet known is counted without being remembered (so a repeat of it would count again) —
 * poisoned pages are rare, and the bounds only guard against a plugin inventing addresses. The
 * bound per VM makes such a plugin fill its own share first: it takes 16 of them, each with a
 * session of its own, before another VM's repeats can be counted twice.
 *
 * VMs are bounded too (`maxVms`): a plugin inventing VM ids, one session and one page each, would
 * otherwise grow the map by one entry per session for ever. Past the bound the VM that got its
 * first page longest ago and has no session now is forgotten; when it connects again its pages
 * are read back from the store (on the reader thread) before its gauge is set, so the count stays
 * exact. Without a store, or past MAX_RESEEDS such reads at once, a forgotten VM counts again
 * from its next page.
 */
import {
  MAX_QUERY_LIMIT,
  type PoisonCursor,
  type PoisonedPage,
  type StoreQueries,
  type StoreReader,
} from '../../store/index.js';

export const DEFAULT_MAX_TRACKED_PAGES = 1_000_000;
export const DEFAULT_MAX_TRACKED_PAGES_PER_VM = 65_536;
export const DEFAULT_MAX_TRACKED_VMS = 16_384;
/** Reads of returning VMs' pages under way at most; past it such a VM counts from its next page. */
export const MAX_RESEEDS = 64;

export interface PoisonedPageBounds {
  maxPages?: number;
  maxPagesPerVm?: number;
  maxVms?: number;
}

/** Where a returning VM's stored pages are read: the store's reader thread. */
export type PoisonPageSource = Pick<StoreReader, 'poisonedPages'>;

interface VmPages {
  pages: Set<bigint>;
  extra: number;
}

/** One read of poisoned pages: the VM (all when undefined), how many at most, and after which. */
type PageRead = [vm: string | undefined, limit: number, after: PoisonCursor | undefined];

/**
 * The reads that page through the poisoned pages of `vm` (all when undefined) until `most` have
 * come or a page comes back short: each yield is the next read, resumed with its rows, which go to
 * `take`. One walk for both callers: driven at once over the store's queries at start, and awaited
 * over the reader thread when a forgotten VM returns.
 */
function* pageReads(
  vm: string | undefined,
  most: number,
  take: (page: PoisonedPage[]) => void,
): Generator<PageRead, void, PoisonedPage[]> {
  let after: PoisonCursor | undefined;
  for (let seen = 0; seen < most; ) {
    const asked = Math.min(MAX_QUERY_LIMIT, most - seen);
    const page = yield [vm, asked, after];
    take(page);
    seen += page.length;
    const last = page[page.length - 1];
    if (!last || page.length < asked) return;
    after = { vm: last.vm, gpa: last.gpa };
  }
}

/** At most `most` of `vm`'s stored poisoned pages, read over the reader thread (migration payloads). */
export async function storedPages(source: PoisonPageSource, vm: string, most: number): Promise<bigint[]> {
  const found: bigint[] = [];
  await readPages(
    source,
    pageReads(vm, most, (page) => {
      for (const p of page) found.push(BigInt(p.gpa));
    }),
  );
  return found;
}

async function readPages(source: PoisonPageSource, reads: Generator<PageRead, void, PoisonedPage[]>) {
  for (let r = reads.next(); !r.done; ) r = reads.next(await source.poisonedPages(...r.value));
}

export class PoisonedPageCounts {
  /** In the order each VM got its first page here: who is forgotten first. */
  readonly #byVm = new Map<string, VmPages>();
  readonly #maxPages: number;
  readonly #maxPagesPerVm: number;
  readonly #maxVms: number;
  #tracked = 0;
  /**
   * Open sessions of each VM that has any: never forgotten. Counted, because a VMM that reconnects
   * at once has its new session admitted while the old one is still closing.
   */
  readonly #live = new Map<string, number>();
  /** VMs whose stored pages are being read back: their count is not told until then. */
  readonly #reseeding = new Set<string>();
  /** VMs forgotten so far: a VM that connects unknown may be one of them. */
  forgotten = 0;
  readonly #source: PoisonPageSource | null;

  constructor(bounds: PoisonedPageBounds = {}, source: PoisonPageSource | null = null) {
    this.#maxPages = bounds.maxPages ?? DEFAULT_MAX_TRACKED_PAGES;
    this.#maxPagesPerVm = bounds.maxPagesPerVm ?? DEFAULT_MAX_TRACKED_PAGES_PER_VM;
    this.#maxVms = bounds.maxVms ?? DEFAULT_MAX_TRACKED_VMS;
    this.#source = source;
  }

  /**
   * Each VM's poisoned pages as the store holds them, up to `maxPages`, so after a restart a VM's
   * gauge goes on from its stored count. No gauge is set here: a VM's comes back when a session of
   * it opens (metrics-sink sessionOpened) or at its next error. `source` reads a forgotten VM's
   * pages back when it returns.
   */
  static fromStore(
    queries: StoreQueries | undefined,
    bounds: PoisonedPageBounds = {},
    source: PoisonPageSource | null = null,
  ): PoisonedPageCounts {
    const counts = new PoisonedPageCounts(bounds, source);
    if (!queries) return counts;
    const reads = pageReads(undefined, bounds.maxPages ?? DEFAULT_MAX_TRACKED_PAGES, (page) => {
      for (const p of page) counts.add(p.vm, BigInt(p.gpa));
    });
    for (let r = reads.next(); !r.done; ) r = reads.next(queries.poisonedPages(...r.value));
    return counts;
  }

  /** Notes one page; returns the VM's count when it grew and is known, else null. */
  add(vm: string, gpa: bigint): number | null {
    const v = this.#entry(vm);
    if (!this.#note(v, gpa)) return null;
    return this.#reseeding.has(vm) ? null : v.pages.size + v.extra;
  }

  count(vm: string): number {
    const v = this.#byVm.get(vm);
    return v ? v.pages.size + v.extra : 0;
  }

  /** VMs remembered now. */
  get vms(): number {
    return this.#byVm.size;
  }

  /**
   * A session of `vm` opened. A VM not known here, after VMs have been forgotten, has its pages read
   * back from the store; `known` hears its count once they are (not if it has no stored page).
   */
  connected(vm: string, known: (count: number) => void): void {
    this.#live.set(vm, (this.#live.get(vm) ?? 0) + 1);
    if (this.#byVm.has(vm) || this.forgotten === 0 || !this.#source || this.#reseeding.has(vm)) return;
    if (this.#reseeding.size >= MAX_RESEEDS) return;
    this.#reseeding.add(vm);
    void this.#reseed(vm, this.#source).then(
      () => this.#reseeded(vm, known),
      () => this.#reseeded(vm, known),
    );
  }

  /** A session of `vm` ended: once its last one has, the VM may be forgotten. */
  departed(vm: string): void {
    const open = this.#live.get(vm) ?? 0;
    if (open > 1) this.#live.set(vm, open - 1);
    else this.#live.delete(vm);
  }

  async #reseed(vm: string, source: PoisonPageSource): Promise<void> {
    await readPages(
      source,
      pageReads(vm, this.#maxPagesPerVm, (page) => {
        const v = this.#entry(vm);
        for (const p of page) this.#note(v, BigInt(p.gpa));
      }),
    );
  }

  /** A read that failed leaves what it found and what came since: the gauge is told that. */
  #reseeded(vm: string, known: (count: number) => void): void {
    this.#reseeding.delete(vm);
    const n = this.count(vm);
    if (n > 0 && this.#live.has(vm)) known(n);
  }

  #entry(vm: string): VmPages {
    let v = this.#byVm.get(vm);
    if (!v) {
      if (this.#byVm.size >= this.#maxVms) this.#forgetOne();
      v = { pages: new Set(), extra: 0 };
      this.#byVm.set(vm, v);
    }
    return v;
  }

  /** Whether the page is new to the VM. */
  #note(v: VmPages, gpa: bigint): boolean {
    if (v.pages.has(gpa)) return false;
    if (this.#tracked < this.#maxPages && v.pages.size < this.#maxPagesPerVm) {
      v.pages.add(gpa);
      this.#tracked++;
    } else {
      v.extra++;
    }
    return true;
  }

  /**
   * Forgets the VM that got its first page longest ago and has no session nor read under way. VMs
   * passed over go to the back, so each is passed over once per round: live ones are at most the
   * plugin sessions, so there is always one to forget unless `maxVms` is below that.
   */
  #forgetOne(): void {
    for (let n = this.#byVm.size; n > 0; n--) {
      const [vm, v] = this.#byVm.entries().next().value as [string, VmPages];
      this.#byVm.delete(vm);
      if (this.#live.has(vm) || this.#reseeding.has(vm)) {
        this.#byVm.set(vm, v);
        continue;
      }
      this.#tracked -= v.pages.size;
      this.forgotten++;
      return;
    }
  }
}

/**
 * The distinct poisoned guest pages of each VM, for the `seawall_poisoned_pages{vm}` gauge: a page
 * counts once however often it fails, exactly as the store's poisoned_pages table counts it (SEA
 * and SIGBUS events with a known GPA; never pruned). Seeded from the store at start so the gauge
 * is true across restarts. Bounded: past `maxPagesPerVm` pages of one VM, or `maxPages` in all, a
 * page not yet known is counted without being remembered (so a repeat of it would count again) —
 * poisoned pages are rare, and the bounds only guard against a plugin inventing addresses. The
 * bound per VM makes such a plugin fill its own share first: it takes 16 of them, each with a
 * session of its own, before another VM's repeats can be counted twice.
 */
import type { EventRecord } from '../../events/index.js';
import { MAX_QUERY_LIMIT, type StoreQueries } from '../../store/index.js';

export const DEFAULT_MAX_TRACKED_PAGES = 1_000_000;
export const DEFAULT_MAX_TRACKED_PAGES_PER_VM = 65_536;

export class PoisonedPageCounts {
  readonly #byVm = new Map<string, { pages: Set<bigint>; extra: number }>();
  readonly #maxPages: number;
  readonly #maxPagesPerVm: number;
  #tracked = 0;

  constructor(maxPages = DEFAULT_MAX_TRACKED_PAGES, maxPagesPerVm = DEFAULT_MAX_TRACKED_PAGES_PER_VM) {
    this.#maxPages = maxPages;
    this.#maxPagesPerVm = maxPagesPerVm;
  }

  /**
   * Each VM's poisoned pages as the store holds them, up to `maxPages`, so the gauge is true from
   * the first scrape after a restart. Departed VMs' gauges come back when they reconnect
   * (metrics-sink sessionOpened).
   */
  static fromStore(
    queries: StoreQueries | undefined,
    maxPages = DEFAULT_MAX_TRACKED_PAGES,
  ): PoisonedPageCounts {
    const counts = new PoisonedPageCounts(maxPages);
    if (!queries) return counts;
    let after: { vm: string; gpa: string } | undefined;
    for (let seen = 0; seen < maxPages; ) {
      const page = queries.poisonedPages(undefined, MAX_QUERY_LIMIT, after);
      for (const p of page) counts.add(p.vm, BigInt(p.gpa));
      seen += page.length;
      const last = page[page.length - 1];
      if (!last || page.length < MAX_QUERY_LIMIT) break;
      after = { vm: last.vm, gpa: last.gpa };
    }
    return counts;
  }

  /** Whether the record marks a page poisoned (store/rows.ts `poisonsPage` is the same rule). */
  static poisons(r: EventRecord): boolean {
    return r.event.gpa !== null && (r.event.kind === 'sea' || r.event.kind === 'sigbus');
  }

  /** Notes one page; returns the VM's count when it grew, else null. */
  add(vm: string, gpa: bigint): number | null {
    let v = this.#byVm.get(vm);
    if (!v) {
      v = { pages: new Set(), extra: 0 };
      this.#byVm.set(vm, v);
    }
    if (v.pages.has(gpa)) return null;
    if (this.#tracked < this.#maxPages && v.pages.size < this.#maxPagesPerVm) {
      v.pages.add(gpa);
      this.#tracked++;
    } else {
      v.extra++;
    }
    return v.pages.size + v.extra;
  }

  count(vm: string): number {
    const v = this.#byVm.get(vm);
    return v ? v.pages.size + v.extra : 0;
  }
}

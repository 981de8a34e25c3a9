/**
 * The guest physical pages each VM has reported poisoned, for migration payloads (a destination
 * must not hand the guest those pages again; QEMU refuses to migrate VMs with poisoned memory
 * unless told which pages). Bounded twice: pages per VM (the oldest are dropped and the VM is
 * marked truncated) and VMs (the least recently reporting VM is forgotten).
 *
 * Memory holds only what this daemon has seen since it started. Where there is an event store,
 * {@link WithStoredPages} adds what the store holds (every poisoned page ever reported, never
 * pruned), so a payload after a restart, or of a forgotten VM, still lists them.
 */
import { ActionError } from './errors.js';

export interface PoisonedPagesOptions {
  perVm: number;
  vms: number;
}

interface VmPages {
  pages: Set<bigint>;
  truncated: boolean;
}

/** A VM's poisoned pages; `truncated` when there may be more than listed. */
export interface PageList {
  pages: bigint[];
  truncated: boolean;
}

/** Where migration payloads get a VM's poisoned pages. */
export interface PoisonedPagesProvider {
  pages(vmId: string): PageList | Promise<PageList>;
}

/**
 * A VM's poisoned pages as the event store holds them, at most `most` (fewer when it holds fewer), in
 * any order; null when the daemon runs without a store. The daemon reads them on the store's reader
 * thread.
 */
export type StoredPages = (vmId: string, most: number) => Promise<bigint[]> | null;

/** How long a payload waits for the store's pages before it goes without them, marked truncated. */
export const STORED_PAGES_WAIT_MS = 2_000;

export class PoisonedPages implements PoisonedPagesProvider {
  readonly #opts: PoisonedPagesOptions;
  /** Map order is recency order: a VM that reports moves to the end. */
  readonly #byVm = new Map<string, VmPages>();
  /** The VM `add` put last in `#byVm` (it may have been forgotten since). */
  #last: string | null = null;
  forgottenVms = 0;

  constructor(opts: PoisonedPagesOptions) {
    if (opts.perVm < 1 || opts.vms < 1)
      throw new ActionError('SEAWALL_ACTION_INVALID_OPTION', 'poisoned page bounds must be ≥ 1', { ...opts });
    this.#opts = opts;
  }

  /**
   * Records page `gpa` (page aligned by the caller or here) for `vmId`. The VM that reported last
   * is last in the map already: a storm (or a batch of one VM's events) moves nothing.
   */
  add(vmId: string, gpa: bigint): void {
    const page = gpa & ~0xfffn;
    let v = this.#byVm.get(vmId);
    if (v !== undefined && this.#last === vmId) {
      this.#addPage(v, page);
      return;
    }
    this.#last = vmId;
    if (v) {
      this.#byVm.delete(vmId);
    } else {
      v = { pages: new Set(), truncated: false };
      if (this.#byVm.size >= this.#opts.vms) {
        const oldest = this.#byVm.keys().next().value as string;
        this.#byVm.delete(oldest);
        this.forgottenVms++;
      }
    }
    this.#byVm.set(vmId, v);
    this.#addPage(v, page);
  }

  #addPage(v: VmPages, page: bigint): void {
    if (v.pages.has(page)) return;
    if (v.pages.size >= this.#opts.perVm) {
      const first = v.pages.values().next().value as bigint;
      v.pages.delete(first);
      v.truncated = true;
    }
    v.pages.add(page);
  }

  /** A VM not known may be one forgotten at the VM bound: truncated then, since its pages are unknown. */
  pages(vmId: string): PageList {
    const v = this.#byVm.get(vmId);
    return v
      ? { pages: [...v.pages], truncated: v.truncated }
      : { pages: [], truncated: this.forgottenVms > 0 };
  }

  get vmCount(): number {
    return this.#byVm.size;
  }
}

/**
 * The pages in memory (the newest, some perhaps not yet committed) together with the store's, up to
 * `perVm` in all. Past it, or when the store's read fails or takes longer than `waitMs`, the list
 * is marked truncated: a destination is never told a list is whole when it may not be.
 */
export class WithStoredPages implements PoisonedPagesProvider {
  readonly #memory: PoisonedPages;
  readonly #stored: StoredPages;
  readonly #perVm: number;
  readonly #waitMs: number;

  constructor(memory: PoisonedPages, stored: StoredPages, perVm: number, waitMs = STORED_PAGES_WAIT_MS) {
    this.#memory = memory;
    this.#stored = stored;
    this.#perVm = perVm;
    this.#waitMs = waitMs;
  }

  async pages(vmId: string): Promise<PageList> {
    const read = this.#stored(vmId, this.#perVm + 1);
    if (read === null) return this.#memory.pages(vmId);
    const stored = await withinWait(read, this.#waitMs);
    // Read after the store's: pages reported meanwhile are listed too.
    const recent = this.#memory.pages(vmId);
    if (stored === null) return { pages: recent.pages, truncated: true };
    const all = new Set(recent.pages);
    let truncated = stored.length > this.#perVm;
    for (const page of stored) {
      if (all.has(page)) continue;
      if (all.size >= this.#perVm) {
        truncated = true;
        break;
      }
      all.add(page);
    }
    return { pages: [...all], truncated };
  }
}

/** The read's pages, or null when it failed or took longer than `ms`. */
function withinWait(read: Promise<bigint[]>, ms: number): Promise<bigint[] | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    timer.unref();
    read.then(
      (pages) => {
        clearTimeout(timer);
        resolve(pages);
      },
      () => {
        clearTimeout(timer);
        resolve(null);
      },
    );
  });
}

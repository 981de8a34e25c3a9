/**
 * The guest physical pages each VM has reported poisoned, for migration payloads (a destination
 * must not hand the guest those pages again; QEMU refuses to migrate VMs with poisoned memory
 * unless told which pages). Bounded twice: pages per VM (the oldest are dropped and the VM is
 * marked truncated) and VMs (the least recently reporting VM is forgotten).
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

/** Where migration payloads get a VM's poisoned pages; the event store may implement it instead. */
export interface PoisonedPagesProvider {
  pages(vmId: string): { pages: bigint[]; truncated: boolean };
}

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

  pages(vmId: string): { pages: bigint[]; truncated: boolean } {
    const v = this.#byVm.get(vmId);
    return v ? { pages: [...v.pages], truncated: v.truncated } : { pages: [], truncated: false };
  }

  get vmCount(): number {
    return this.#byVm.size;
  }
}

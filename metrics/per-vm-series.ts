import type { DeferredCount, DeferredCounts } from './counter-children.js';
import {
  type FallbackVia,
  MEMORY_ERROR_KINDS,
  type MemoryErrorKind,
  rejectClosedLabel,
  SEVERITIES,
  type Severity,
} from './label-values.js';
import type { MetricFamilies } from './metric-families.js';
import type { Sample } from './sample-family.js';
import { type VmSeriesBounds, VmSeriesTracker } from './vm-series-tracker.js';

/** Cached children of one VM, so recording is a lookup and an increment. */
interface VmState {
  readonly memoryErrors: Map<MemoryErrorKind, Map<Severity, DeferredCount<Sample>>>;
  /** `seawall_fallback_events_reported_total` by `via`: replay, applied. */
  fallbackReplay: Sample | undefined;
  fallbackApplied: Sample | undefined;
  poisonedPages: Sample | undefined;
}

const KINDS: ReadonlySet<string> = new Set(MEMORY_ERROR_KINDS);
const SEVERITY_SET: ReadonlySet<string> = new Set(SEVERITIES);

type VmFamilies = Pick<
  MetricFamilies,
  'memoryErrors' | 'fallbackReported' | 'poisonedPages' | 'vmsTracked' | 'vmSeriesEvicted'
>;

/**
 * The VM-labelled series (`seawall_memory_errors_total`, `seawall_poisoned_pages`,
 * `seawall_fallback_events_reported_total`) with their lifetime: admitted on first recording, live
 * while a session of the VM is open, removed by TTL after departure or by eviction at `maxVms` (see {@link VmSeriesTracker}).
 * Their families are sample-family.ts's: a series is created, changed and removed by reference.
 */
export class PerVmSeries {
  readonly #f: VmFamilies;
  readonly #vms: VmSeriesTracker<VmState>;
  readonly #counts: DeferredCounts;

  /** Memory errors are counted through `counts`: settle it before reading the registry. */
  constructor(families: VmFamilies, bounds: VmSeriesBounds, counts: DeferredCounts, now: () => number) {
    this.#f = families;
    this.#counts = counts;
    this.#vms = new VmSeriesTracker<VmState>(
      bounds,
      {
        create: () => {
          this.#f.vmsTracked.inc();
          return {
            memoryErrors: new Map(),
            fallbackReplay: undefined,
            fallbackApplied: undefined,
            poisonedPages: undefined,
          };
        },
        release: (_vm, state, evicted) => this.#release(state, evicted),
      },
      now,
    );
    families.vmSeriesEvicted.inc(0);
  }

  /** VMs that currently have series. */
  get size(): number {
    return this.#vms.size;
  }

  /** Hot path: a VM's count already made is a lookup and an increment; the checks run once per count. */
  memoryError(vm: string, kind: MemoryErrorKind, severity: Severity): void {
    const state = this.#vms.touchLive(vm);
    const count = state?.memoryErrors.get(kind)?.get(severity);
    if (count !== undefined) this.#counts.inc(count);
    else this.#firstMemoryError(vm, kind, severity);
  }

  setPoisonedPages(vm: string, pages: number): void {
    const state = this.#vms.touch(vm);
    state.poisonedPages ??= this.#f.poisonedPages.create({ vm });
    state.poisonedPages.value = pages;
  }

  fallbackReported(vm: string, count: number, via: FallbackVia): void {
    const state = this.#vms.touch(vm);
    if (via === 'replay') {
      state.fallbackReplay ??= this.#f.fallbackReported.create({ vm, via });
      state.fallbackReplay.inc(count);
    } else {
      state.fallbackApplied ??= this.#f.fallbackReported.create({ vm, via });
      state.fallbackApplied.inc(count);
    }
  }

  connect(vm: string): void {
    this.#vms.connect(vm);
  }

  depart(vm: string, now: number): void {
    this.#vms.depart(vm, now);
  }

  sweep(now: number): number {
    return this.#vms.sweep(now);
  }

  #firstMemoryError(vm: string, kind: MemoryErrorKind, severity: Severity): void {
    // Checked before admitting the VM, so a bad value never costs a VM slot.
    if (!KINDS.has(kind)) rejectClosedLabel('kind', MEMORY_ERROR_KINDS, kind);
    if (!SEVERITY_SET.has(severity)) rejectClosedLabel('severity', SEVERITIES, severity);
    const state = this.#vms.touch(vm);
    let bySeverity = state.memoryErrors.get(kind);
    if (bySeverity === undefined) {
      bySeverity = new Map();
      state.memoryErrors.set(kind, bySeverity);
    }
    let count = bySeverity.get(severity);
    if (count === undefined) {
      count = this.#counts.of(this.#f.memoryErrors.create({ vm, kind, severity }));
      bySeverity.set(severity, count);
    }
    this.#counts.inc(count);
  }

  #release(state: VmState, evicted: boolean): void {
    for (const bySeverity of state.memoryErrors.values()) {
      for (const count of bySeverity.values()) {
        this.#counts.discard(count);
        this.#f.memoryErrors.remove(count.child);
      }
    }
    if (state.fallbackReplay !== undefined) this.#f.fallbackReported.remove(state.fallbackReplay);
    if (state.fallbackApplied !== undefined) this.#f.fallbackReported.remove(state.fallbackApplied);
    if (state.poisonedPages !== undefined) this.#f.poisonedPages.remove(state.poisonedPages);
    this.#f.vmsTracked.dec();
    if (evicted) this.#f.vmSeriesEvicted.inc();
  }
}

import { performance } from 'node:perf_hooks';
import { type Counter, Registry } from 'prom-client';
import { assertCount, invalidOption, invalidValue } from './checks.js';
import {
  ClosedCounterChildren,
  type DeferredCount,
  DeferredCounts,
  OpenCounterChildren,
} from './counter-children.js';
import { MetricsError } from './errors.js';
import {
  ACTIONS,
  type Action,
  assertClosedLabel,
  assertOpenLabel,
  BoundedLabelValues,
  FALLBACK_VIAS,
  type FallbackVia,
  KILL_OUTCOMES,
  type KillOutcome,
  type MemoryErrorKind,
  MIGRATION_OUTCOMES,
  type MigrationOutcome,
  SESSION_OUTCOMES,
  type SessionOutcome,
  type Severity,
} from './label-values.js';
import { createMetricFamilies, type MetricFamilies } from './metric-families.js';
import { collectNodeMetrics } from './node-metrics.js';
import { PerVmSeries } from './per-vm-series.js';
import { type SeawallMetricsOptions, withDefaults } from './seawall-metrics-options.js';
import { type MetricsRendering, renderInSlices } from './sliced-render.js';
import { type StoreLoad, StoreLoadReader } from './store-load.js';

export type { StoreLoad } from './store-load.js';

type CounterChild = Counter.Internal;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const DEFAULT_METRICS_PREFIX = 'seawall_';

/**
 * seawall's Prometheus metrics on a registry of its own. Create one per process, at start-up.
 *
 * Methods take typed values and never expose label objects. Label values are validated the first
 * time a combination is seen and the prom-client child is cached, so the per-event cost is a Map
 * lookup and an increment — for memory errors and actions, of a plain number handed to prom-client
 * at each scrape and each sweep (counter-children.ts `DeferredCounts`). A value outside a closed
 * set throws `SEAWALL_METRICS_INVALID_LABEL`: the types already forbid it, so reaching the check
 * means a caller bug, which a silent `other` would hide. Open labels (rule, reason, op, from, to)
 * are bounded by `maxLabelValues` and fold into `other` past it, counted in
 * `seawall_metrics_label_overflow_total`.
 */
export class SeawallMetrics {
  /** Content-Type of {@link render} and {@link metricsText} (Prometheus text format 0.0.4). */
  readonly contentType: string;
  readonly #registry = new Registry();
  readonly #f: MetricFamilies;
  readonly #now: () => number;
  readonly #vms: PerVmSeries;
  readonly #sweepIntervalMs: number;
  readonly #rules: BoundedLabelValues;
  readonly #from: BoundedLabelValues;
  readonly #to: BoundedLabelValues;
  /** Memory errors and actions, counted per event: handed to prom-client at each scrape and sweep. */
  readonly #counts = new DeferredCounts();
  readonly #actions = new Map<Action, Map<string, DeferredCount>>();
  readonly #downgrades = new Map<string, CounterChild>();
  readonly #protocolErrors: OpenCounterChildren;
  readonly #storeErrors: OpenCounterChildren;
  readonly #kernelMismatches: OpenCounterChildren;
  readonly #sinkFailures: OpenCounterChildren;
  readonly #sessionsEnded: ClosedCounterChildren<SessionOutcome>;
  readonly #migrations: ClosedCounterChildren<MigrationOutcome>;
  readonly #kills: ClosedCounterChildren<KillOutcome>;
  readonly #reloadSuccess: CounterChild;
  readonly #reloadFailure: CounterChild;
  readonly #storeLoad: StoreLoadReader;
  #sessions = 0;
  #timer: NodeJS.Timeout | undefined;
  #renderings: Promise<unknown> = Promise.resolve();

  constructor(options: SeawallMetricsOptions = {}) {
    const { ttlSeconds, maxVms, maxLabelValues } = withDefaults(options);
    if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) invalidOption('vmSeriesTtlSeconds', ttlSeconds);
    if (!(Number.isSafeInteger(maxVms) && maxVms > 0)) invalidOption('maxVms', maxVms);
    if (!(Number.isSafeInteger(maxLabelValues) && maxLabelValues > 0)) {
      invalidOption('maxLabelValues', maxLabelValues);
    }
    const version = options.version ?? 'unknown';
    assertOpenLabel('version', version);

    this.contentType = this.#registry.contentType;
    this.#f = createMetricFamilies(this.#registry);
    this.#now = options.now ?? (() => performance.now());
    const ttlMs = ttlSeconds * 1000;
    // Sweeping four times per TTL keeps expired series at most 25 % past their TTL.
    this.#sweepIntervalMs = Math.min(Math.max(ttlMs / 4, 1000), 60_000);
    this.#vms = new PerVmSeries(this.#f, { ttlMs, maxVms }, this.#counts, this.#now);

    const overflow = (label: string) => this.#f.labelOverflow.inc({ label });
    this.#rules = new BoundedLabelValues('rule', maxLabelValues, overflow);
    this.#from = new BoundedLabelValues('from', maxLabelValues, overflow);
    this.#to = new BoundedLabelValues('to', maxLabelValues, overflow);

    const reasons = new BoundedLabelValues('reason', maxLabelValues, overflow);
    this.#protocolErrors = new OpenCounterChildren(this.#f.protocolErrors, reasons);
    this.#storeErrors = new OpenCounterChildren(
      this.#f.storeErrors,
      new BoundedLabelValues('op', maxLabelValues, overflow),
    );
    this.#kernelMismatches = new OpenCounterChildren(
      this.#f.kernelMismatches,
      new BoundedLabelValues('field', maxLabelValues, overflow),
    );
    this.#sinkFailures = new OpenCounterChildren(
      this.#f.sinkFailures,
      new BoundedLabelValues('sink', maxLabelValues, overflow),
    );

    // Closed-label series exist from the start at 0, so `increase()` sees their first event.
    this.#sessionsEnded = new ClosedCounterChildren(this.#f.pluginSessionsEnded, 'outcome', SESSION_OUTCOMES);
    this.#migrations = new ClosedCounterChildren(this.#f.migrations, 'outcome', MIGRATION_OUTCOMES);
    this.#kills = new ClosedCounterChildren(this.#f.kills, 'outcome', KILL_OUTCOMES);
    const reloads = new ClosedCounterChildren(this.#f.policyReloads, 'result', ['success', 'failure']);
    this.#reloadSuccess = reloads.get('success');
    this.#reloadFailure = reloads.get('failure');

    this.#f.buildInfo.set({ version, node_version: process.version }, 1);
    this.#f.storeHealthy.set(1);
    this.#storeLoad = new StoreLoadReader({
      pending: this.#f.storePendingEvents,
      held: this.#f.storeHeldEvents,
      heldUpdates: this.#f.storeHeldUpdates,
      backpressure: this.#f.storeBackpressure,
      lost: this.#f.storeLost,
      sessionHolds: this.#f.storeSessionHolds,
    });
    if (options.defaultMetrics ?? true) collectNodeMetrics(this.#registry, DEFAULT_METRICS_PREFIX);
  }

  /** One guest memory error for `vm`. Hot path. */
  memoryError(vm: string, kind: MemoryErrorKind, severity: Severity): void {
    this.#vms.memoryError(vm, kind, severity);
  }

  /** One verdict with `action`, chosen by policy rule `rule`. Hot path. */
  action(action: Action, rule: string): void {
    this.#counts.inc(this.#actions.get(action)?.get(rule) ?? this.#actionCount(action, rule));
  }

  /** One injection downgraded from `from` to `to` by `rule`'s onUnsupported. */
  downgrade(from: string, to: string, rule: string): void {
    const key = `${from}\n${to}\n${rule}`;
    let child = this.#downgrades.get(key);
    if (child === undefined) {
      const labels = {
        from: this.#from.resolve(from),
        to: this.#to.resolve(to),
        rule: this.#rules.resolve(rule),
      };
      child = this.#f.downgrades.labels(labels);
      if (labels.from === from && labels.to === to && labels.rule === rule) this.#downgrades.set(key, child);
    }
    child.inc();
  }

  /** Event-to-verdict latency in seconds. Hot path. */
  observeVerdictLatency(seconds: number): void {
    if (!(seconds >= 0 && seconds < Number.POSITIVE_INFINITY)) invalidValue('seconds', seconds);
    this.#f.verdictLatency.observe(seconds);
  }

  /** Pages of `vm` currently known poisoned. */
  setPoisonedPages(vm: string, pages: number): void {
    assertCount('pages', pages);
    this.#vms.setPoisonedPages(vm, pages);
  }

  /** `count` events of `vm` that the plugin's fallback answered, reported as `via` says (FALLBACK_VIAS). */
  fallbackReported(vm: string, count: number, via: FallbackVia): void {
    assertCount('count', count);
    assertClosedLabel('via', FALLBACK_VIAS, via);
    this.#vms.fallbackReported(vm, count, via);
  }

  /** A session of `vm` opened: its series are live (never expired) until {@link vmDeparted}. */
  vmConnected(vm: string): void {
    this.#vms.connect(vm);
  }

  /**
   * A session of `vm` ended; once its last one has, its series stay for `vmSeriesTtlSeconds` after
   * its last sighting, then `sweep()` removes them. Recording for it meanwhile never makes it live.
   */
  vmDeparted(vm: string): void {
    this.#vms.depart(vm, this.#now());
  }

  /** A plugin connection accepted. Pair each call with exactly one {@link sessionClosed}. */
  sessionOpened(): void {
    this.#sessions++;
    this.#f.pluginSessions.set(this.#sessions);
  }

  /** A plugin connection accepted by {@link sessionOpened} ended; refusals are {@link sessionRejected}. */
  sessionClosed(outcome: Exclude<SessionOutcome, 'rejected'>): void {
    const child = this.#sessionsEnded.get(outcome);
    if (this.#sessions === 0) {
      const message = 'sessionClosed() without sessionOpened()';
      throw new MetricsError('SEAWALL_METRICS_UNBALANCED_SESSION', message, { outcome });
    }
    this.#sessions--;
    this.#f.pluginSessions.set(this.#sessions);
    child.inc();
  }

  /** A plugin connection refused on accept or at HELLO: ended `rejected`, never in the sessions gauge. */
  sessionRejected(): void {
    this.#sessionsEnded.get('rejected').inc();
  }

  /** A plugin protocol violation with a stable reason code (e.g. the protocol error's `code`). */
  protocolError(reason: string): void {
    this.#protocolErrors.get(reason).inc();
  }

  /** A migration hook finished with `outcome`. */
  migration(outcome: MigrationOutcome): void {
    this.#migrations.get(outcome).inc();
  }

  /** A kill finished with `outcome`. */
  kill(outcome: KillOutcome): void {
    this.#kills.get(outcome).inc();
  }

  /**
   * A policy load or reload finished. On success, `version` (and the file's `sha256`, lowercase hex)
   * replace the single `seawall_policy_info` series. On failure the previous policy stays in force,
   * so `seawall_policy_info` is left alone and only `last_reload_successful` drops to 0.
   */
  policyReload(ok: boolean, version?: string, sha256?: string): void {
    if (!ok) {
      this.#reloadFailure.inc();
      this.#f.policyLastReloadSuccessful.set(0);
      return;
    }
    if (version !== undefined) assertOpenLabel('version', version);
    if (sha256 !== undefined && !SHA256_HEX.test(sha256)) {
      throw new MetricsError('SEAWALL_METRICS_INVALID_LABEL', 'sha256 must be 64 lowercase hex digits', {
        label: 'sha256',
        value: sha256,
      });
    }
    this.#reloadSuccess.inc();
    this.#f.policyLastReloadSuccessful.set(1);
    this.#f.policyLastReloadSuccessTimestamp.set(Date.now() / 1000);
    if (version !== undefined) {
      this.#f.policyInfo.reset();
      this.#f.policyInfo.set({ version, sha256: sha256 ?? '' }, 1);
    }
  }

  /** Whether answered events reach the store, and how many are held in memory meanwhile. */
  storeHealth(healthy: boolean, heldEvents: number): void {
    assertCount('heldEvents', heldEvents);
    this.#f.storeHealthy.set(healthy ? 1 : 0);
    this.#f.storeHeldEvents.set(heldEvents);
  }

  /** Where the event store's write-ahead queue stands, read at each scrape (metrics/store-load.ts). */
  watchStore(read: () => StoreLoad): void {
    this.#storeLoad.watch(read);
  }

  /** An event store operation `op` (e.g. `append`, `prune`, `open`) failed. */
  storeError(op: string): void {
    this.#storeErrors.get(op).inc();
  }

  /**
   * An attached vCPU's kvm_run page disagreed with the plugin's copy of the exit in `field`
   * (exit_reason, esr, gpa, …): a buggy or lying plugin.
   */
  kernelMismatch(field: string): void {
    this.#kernelMismatches.get(field).inc();
  }

  /** An event sink named `sink` threw while handling an event (the event bus caught it). */
  sinkFailure(sink: string): void {
    this.#sinkFailures.get(sink).inc();
  }

  /**
   * Removes the series of VMs departed more than `vmSeriesTtlSeconds` ago; returns how many VMs.
   * Settles the waiting counts first: where nobody scrapes, this is what releases them.
   */
  sweep(): number {
    this.#counts.settle();
    return this.#vms.sweep(this.#now());
  }

  /** Starts the periodic sweep on an unref'd timer (it never keeps the process alive). Idempotent. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.sweep(), this.#sweepIntervalMs);
    this.#timer.unref();
  }

  /** Stops the periodic sweep. Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Number of VMs that currently have series. */
  get trackedVms(): number {
    return this.#vms.size;
  }

  /** The exposition text by prom-client, read in one task, rendered in slices (sliced-render.ts). */
  render(): Promise<MetricsRendering> {
    const prepare = () => {
      this.#counts.settle();
      this.#storeLoad.collect();
    };
    // One at a time: a per-VM family keeps one reading's values at once.
    const rendering = this.#renderings.then(() => renderInSlices(this.#registry, prepare));
    this.#renderings = rendering.catch(() => undefined);
    return rendering;
  }

  /** {@link render}'s text as one string (tests, tools; the endpoint writes the parts). */
  async metricsText(): Promise<string> {
    return Buffer.concat((await this.render()).chunks).toString();
  }

  #actionCount(action: Action, rule: string): DeferredCount {
    assertClosedLabel('action', ACTIONS, action);
    const byRule = this.#actions.get(action) ?? new Map<string, DeferredCount>();
    this.#actions.set(action, byRule);
    // Keyed by the exported value: rules folded into `other` share one waiting count.
    const exported = this.#rules.resolve(rule);
    let count = byRule.get(exported);
    if (count === undefined) {
      count = this.#counts.of(this.#f.actions.labels({ action, rule: exported }));
      byRule.set(exported, count);
    }
    return count;
  }
}

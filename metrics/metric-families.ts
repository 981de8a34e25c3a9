import { Counter, Gauge, type Registry } from 'prom-client';
import { InPlaceHistogram } from './in-place-histogram.js';
import { SampleFamily } from './sample-family.js';

/**
 * Upper bounds of `seawall_verdict_latency_seconds`: 10 µs to 1 s in 1-2.5-5 steps. A verdict is
 * normally tens of microseconds (the vCPU is stalled meanwhile); the top buckets catch a stalled
 * event loop or store. A verdict past the plugin's deadline also shows up as a fallback report
 * (`via` applied). The time an event waited in its socket before it was parsed is not in the histogram.
 */
export const VERDICT_LATENCY_BUCKETS: readonly number[] = [
  1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1,
];

/** Every seawall metric family, registered on one (non-global) registry. Names: docs/metrics.md. */
export interface MetricFamilies {
  readonly memoryErrors: SampleFamily;
  readonly actions: Counter<'action' | 'rule'>;
  readonly downgrades: Counter<'from' | 'to' | 'rule'>;
  readonly verdictLatency: InPlaceHistogram;
  readonly poisonedPages: SampleFamily;
  readonly pluginSessions: Gauge;
  readonly pluginSessionsEnded: Counter<'outcome'>;
  readonly protocolErrors: Counter<'reason'>;
  readonly fallbackReported: SampleFamily;
  readonly migrations: Counter<'outcome'>;
  readonly kills: Counter<'outcome'>;
  readonly policyReloads: Counter<'result'>;
  readonly policyLastReloadSuccessTimestamp: Gauge;
  readonly policyLastReloadSuccessful: Gauge;
  readonly policyInfo: Gauge<'version' | 'sha256'>;
  readonly storeErrors: Counter<'op'>;
  readonly storeHealthy: Gauge;
  readonly storeHeldEvents: Gauge;
  readonly storePendingEvents: Gauge;
  readonly storeBackpressure: Counter;
  readonly storeHeldUpdates: Gauge;
  readonly storeLost: Counter<'what'>;
  readonly storeSessionHolds: Counter;
  readonly kernelMismatches: Counter<'field'>;
  readonly sinkFailures: Counter<'sink'>;
  readonly buildInfo: Gauge<'version' | 'node_version'>;
  readonly vmSeriesEvicted: Counter;
  readonly labelOverflow: Counter<'label'>;
  readonly vmsTracked: Gauge;
}

/** Creates and registers the families. prom-client validates names and labels here, not at scrape. */
export function createMetricFamilies(registry: Registry): MetricFamilies {
  const registers = [registry];
  return {
    memoryErrors: new SampleFamily({
      name: 'seawall_memory_errors_total',
      help: 'Guest memory errors handled, by VM, how they reached the daemon (kind) and ESR SET severity.',
      type: 'counter',
      registers,
    }),
    actions: new Counter({
      name: 'seawall_actions_total',
      help: 'Verdicts issued, by action and by the policy rule that chose it.',
      labelNames: ['action', 'rule'],
      registers,
    }),
    downgrades: new Counter({
      name: 'seawall_injection_downgrades_total',
      help: 'Injections downgraded because the host cannot inject what the rule asked (onUnsupported).',
      labelNames: ['from', 'to', 'rule'],
      registers,
    }),
    verdictLatency: new InPlaceHistogram({
      name: 'seawall_verdict_latency_seconds',
      help: 'Time from parsing an event to writing its verdict; the wait in its socket before is not in it.',
      buckets: [...VERDICT_LATENCY_BUCKETS],
      registers,
    }),
    poisonedPages: new SampleFamily({
      name: 'seawall_poisoned_pages',
      help: 'Guest pages currently known to be poisoned, by VM.',
      type: 'gauge',
      registers,
    }),
    pluginSessions: new Gauge({
      name: 'seawall_plugin_sessions',
      help: 'VMM plugin sessions currently connected.',
      registers,
    }),
    pluginSessionsEnded: new Counter({
      name: 'seawall_plugin_sessions_ended_total',
      help: 'VMM plugin sessions ended, by outcome (closed, protocol_error, rejected).',
      labelNames: ['outcome'],
      registers,
    }),
    protocolErrors: new Counter({
      name: 'seawall_protocol_errors_total',
      help: 'Plugin protocol violations (each closes or refuses its connection), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    fallbackReported: new SampleFamily({
      name: 'seawall_fallback_events_reported_total',
      help: "Events whose guest got the plugin's local fallback verdict, by VM and how the plugin reported them (via).",
      type: 'counter',
      registers,
    }),
    migrations: new Counter({
      name: 'seawall_migrations_total',
      help: 'Migration hook runs, by outcome.',
      labelNames: ['outcome'],
      registers,
    }),
    kills: new Counter({
      name: 'seawall_kills_total',
      help: 'VM kills, by outcome (exited within grace, SIGKILLed, failed).',
      labelNames: ['outcome'],
      registers,
    }),
    policyReloads: new Counter({
      name: 'seawall_policy_reloads_total',
      help: 'Policy loads and reloads, by result (success, failure).',
      labelNames: ['result'],
      registers,
    }),
    policyLastReloadSuccessTimestamp: new Gauge({
      name: 'seawall_policy_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful policy load or reload.',
      registers,
    }),
    policyLastReloadSuccessful: new Gauge({
      name: 'seawall_policy_last_reload_successful',
      help: 'Whether the last policy load or reload succeeded (1) or failed and the previous policy was kept (0).',
      registers,
    }),
    policyInfo: new Gauge({
      name: 'seawall_policy_info',
      help: 'The policy in force: version and SHA-256 of its file; always 1.',
      labelNames: ['version', 'sha256'],
      registers,
    }),
    kernelMismatches: new Counter({
      name: 'seawall_kernel_mismatches_total',
      help: "Exit-record fields where a plugin's copy differed from the kernel's kvm_run page of an attached vCPU (the page's value was used), by field.",
      labelNames: ['field'],
      registers,
    }),
    storeErrors: new Counter({
      name: 'seawall_store_errors_total',
      help: 'Event store operations that failed, by operation.',
      labelNames: ['op'],
      registers,
    }),
    storeHealthy: new Gauge({
      name: 'seawall_store_healthy',
      help: 'Whether answered events are reaching the event store (1), or are held in memory while it is faulty (0).',
      registers,
    }),
    storeHeldEvents: new Gauge({
      name: 'seawall_store_held_events',
      help: 'Answered events held in memory until the faulty event store can take them.',
      registers,
    }),
    storePendingEvents: new Gauge({
      name: 'seawall_store_pending_events',
      help: 'Answered events written ahead to disk and not yet committed to the event store database.',
      registers,
    }),
    storeBackpressure: new Counter({
      name: 'seawall_store_backpressure_seconds_total',
      help: 'Time verdicts waited for the event store, because its bound of events written ahead and not yet committed was reached.',
      registers,
    }),
    storeSessionHolds: new Counter({
      name: 'seawall_store_session_holds_total',
      help: 'VM sessions the daemon stopped reading because half the bound of answered events written ahead and not yet committed (50,000) was reached and they had at least their even share of them, instead of making every verdict wait; each is read again once its events are committed or a quarter is left.',
      registers,
    }),
    storeHeldUpdates: new Gauge({
      name: 'seawall_store_held_updates',
      help: 'APPLIED results and session, action and policy rows held in memory until the faulty event store can take them.',
      registers,
    }),
    storeLost: new Counter({
      name: 'seawall_store_lost_total',
      help: 'Answered events and updates never stored: held through an event store fault and dropped past the memory bound (oldest first), or in write-ahead files removed or damaged before their commit.',
      labelNames: ['what'],
      registers,
    }),
    sinkFailures: new Counter({
      name: 'seawall_sink_failures_total',
      help: 'Event sinks (store, metrics, journal, hooks) that threw while handling an event, by sink.',
      labelNames: ['sink'],
      registers,
    }),
    buildInfo: new Gauge({
      name: 'seawall_build_info',
      help: 'seawall build and runtime versions; always 1.',
      labelNames: ['version', 'node_version'],
      registers,
    }),
    vmSeriesEvicted: new Counter({
      name: 'seawall_metrics_vm_series_evicted_total',
      help: 'VMs whose series were removed early because more than maxVms VMs had series.',
      registers,
    }),
    labelOverflow: new Counter({
      name: 'seawall_metrics_label_overflow_total',
      help: 'Recordings whose open label value was exported as "other" because the label reached its bound.',
      labelNames: ['label'],
      registers,
    }),
    vmsTracked: new Gauge({
      name: 'seawall_metrics_vms_tracked',
      help: 'VMs that currently have per-VM series (live and departed, not yet expired).',
      registers,
    }),
  };
}

/** Options of `SeawallMetrics` (seawall-metrics.ts); every field has a default. */
export interface SeawallMetricsOptions {
  /** How long a departed VM's series stay exported after its last sighting. Default 3600. */
  readonly vmSeriesTtlSeconds?: number;
  /** Most distinct VMs with series at once; past it the least recently seen is evicted. Default 4096. */
  readonly maxVms?: number;
  /** Most distinct values of each open label (rule, reason, op, sink, from, to); then `other`. Default 256. */
  readonly maxLabelValues?: number;
  /** Monotonic clock in milliseconds, for TTLs. Default `performance.now`. Inject in tests. */
  readonly now?: () => number;
  /** seawall's version for `seawall_build_info`. Default `unknown`. */
  readonly version?: string;
  /** prom-client's process and Node.js metrics (node-metrics.ts), prefixed `seawall_`. Default true. */
  readonly defaultMetrics?: boolean;
}

export const DEFAULT_VM_SERIES_TTL_SECONDS = 3600;
export const DEFAULT_MAX_VMS = 4096;
export const DEFAULT_MAX_LABEL_VALUES = 256;

/** The bounds of `options`, their defaults where not given. */
export function withDefaults(options: SeawallMetricsOptions) {
  return {
    ttlSeconds: options.vmSeriesTtlSeconds ?? DEFAULT_VM_SERIES_TTL_SECONDS,
    maxVms: options.maxVms ?? DEFAULT_MAX_VMS,
    maxLabelValues: options.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES,
  };
}

export { alertRulesPath, alertRulesText, DEFAULT_RUNBOOK_BASE, runbookBaseHref } from './alert-rules.js';
export { isMetricsError, MetricsError, type MetricsErrorCode } from './errors.js';
export {
  ACTIONS,
  type Action,
  FALLBACK_VIAS,
  type FallbackVia,
  KILL_OUTCOMES,
  type KillOutcome,
  MAX_LABEL_VALUE_LENGTH,
  MEMORY_ERROR_KINDS,
  type MemoryErrorKind,
  MIGRATION_OUTCOMES,
  type MigrationOutcome,
  OVERFLOW_LABEL_VALUE,
  SESSION_OUTCOMES,
  SEVERITIES,
  type SessionOutcome,
  type Severity,
} from './label-values.js';
export { VERDICT_LATENCY_BUCKETS } from './metric-families.js';
export type { PeerEndpoint, PeerUid } from './scrape-connections.js';
export { SeawallMetrics, type StoreLoad } from './seawall-metrics.js';
export {
  DEFAULT_MAX_LABEL_VALUES,
  DEFAULT_MAX_VMS,
  DEFAULT_VM_SERIES_TTL_SECONDS,
  type SeawallMetricsOptions,
} from './seawall-metrics-options.js';
export {
  DEFAULT_METRICS_HOST,
  DEFAULT_METRICS_PORT,
  METRICS_PATH,
  type MetricsAddress,
  MetricsServer,
  type MetricsServerOptions,
  type MetricsSource,
} from './server.js';
export { LINES_PER_SLICE, type MetricsRendering, renderInSlices } from './sliced-render.js';

export { AwaitingApplied } from './awaiting-applied.js';
export { STORE_FILE, storePath } from './connection.js';
export { EncodedJson, jsonText } from './encoded-json.js';
export { isStoreError, StoreError, type StoreErrorCode, type StoreOp } from './errors.js';
export {
  type ActionInput,
  type ActionRecord,
  type AppendResult,
  EventStore,
  type StoreOptions,
  type StoreRow,
} from './event-store.js';
export type { FollowAnswer, FollowQuery } from './follow-query.js';
export { IdleTimer } from './idle-timer.js';
export { type PruneEnv, type PruneOptions, prune } from './prune.js';
export {
  DEFAULT_REBUILD_LIMIT,
  type EventQuery,
  MAX_QUERY_LIMIT,
  type PoisonCursor,
  type PoisonedPage,
  type StoredAction,
  StoreQueries,
  type StoreTotals,
  type VmSummary,
  type WindowEvent,
  type WindowQuery,
} from './queries.js';
export { ReadOnlyStore } from './read-only-store.js';
export { type ReadsCommitted, StoreReader } from './reader-client.js';
export { RETENTION_DEFAULTS, Retention, type RetentionOptions, type RetentionRun } from './retention.js';
export { type EventParams, hex64, parseHex64, type StoredEvent, valuesOfParams } from './rows.js';
export { migrate, SCHEMA_VERSION, schemaVersion } from './schema.js';
export { startThread } from './start-thread.js';
export { StoreLock } from './store-lock.js';
export { storeSink } from './store-sink.js';
export { toStored } from './stored-values.js';
export { HELPER_THREAD_NICE, yieldToVerdictPath } from './thread-priority.js';
export {
  type PolicyText,
  WhyBuilder,
  type WhyCondition,
  type WhyEntry,
  type WhyOutcome,
  type WhyQuery,
  type WhyResult,
} from './why.js';
export { type StoreHealth, WriteAhead, type WriteAheadOptions } from './write-ahead.js';

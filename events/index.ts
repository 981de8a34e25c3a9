export { type AppliedDetail, EventBus, type EventRecord, type SessionOutcome, type Sink } from './bus.js';
export { poisonsPage } from './poison.js';
export { printable } from './printable.js';
export type { SessionInfo } from './session-info.js';

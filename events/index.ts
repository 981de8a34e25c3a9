export { EventBus, type EventRecord, type SessionOutcome, type Sink } from './bus.js';
export type { SessionInfo } from './session-info.js';
export { printable } from './printable.js';

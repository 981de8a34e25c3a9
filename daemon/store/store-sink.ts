/**
 * The event store as a bus sink. `beforeReply` stores the whole batch in one transaction before
 * the pipeline writes its verdicts, so an event whose verdict was sent is on disk (in the WAL)
 * first. Add this sink before the others: sinks run in the order they were added.
 */
import type { Sink } from '../event-bus.js';
import type { EventStore } from './event-store.js';

export function storeSink(store: EventStore): Sink {
  return {
    name: 'store',
    beforeReply(batch) {
      // Never throws: a failure is rolled back, reported through the store's onError, and the
      // verdicts still go out.
      store.append(batch);
    },
    applied(s, seq, result) {
      store.markApplied(s.id, seq, result);
    },
    sessionOpened(s) {
      store.sessionOpened(s);
    },
    sessionClosed(s, outcome, detail) {
      store.sessionClosed(s, outcome, detail);
    },
  };
}

/**
 * The event store as a bus sink. `beforeReply` makes the whole batch durable before the pipeline
 * writes its verdicts — through the write-ahead file when there is one (one write(2); SQLite takes
 * the rows off the verdict path), else in one SQLite transaction — so an event whose verdict was
 * sent survives kill -9. Add this sink before the others: sinks run in the order they were added,
 * and the store marks replays it has already recorded as duplicates for the sinks after it.
 */
import type { Sink } from '../events/index.js';
import type { EventStore } from './event-store.js';
import type { WriteAhead } from './write-ahead.js';

export function storeSink(store: EventStore, ahead: WriteAhead | null = null): Sink {
  return {
    name: 'store',
    beforeReply(batch) {
      // Never throws: a failure is reported through the store's onError, and the verdicts still go out.
      if (ahead) ahead.record(batch);
      else store.append(batch);
    },
    applied(s, seq, result, detail) {
      const fallback = detail?.source === 'fallback' ? detail.action : null;
      // Through the write-ahead layer when there is one (it takes the store's `update`): its event
      // row may still be queued.
      store.markApplied(s.id, seq, result, fallback);
    },
    // Through the write-ahead layer too, when there is one (it takes the store's `update`): off
    // the event loop, and after the rows queued before them.
    sessionOpened: (s) => store.sessionOpened(s),
    sessionClosed: (s, outcome, detail) => store.sessionClosed(s, outcome, detail),
  };
}

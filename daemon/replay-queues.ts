/**
 * Replays waiting for the verdict path, one queue per session, taken in turn: a session that
 * queued 16,000 of them does not make another VM's replay (or its heartbeat echo) wait behind all
 * of them. Beside the replays a session's queue holds what must follow them: the echo of a
 * HEARTBEAT sent after them, and the session's final frame when it is closing.
 */
import type { EventMsg } from '../protocol/index.js';
import type { PluginSession } from './session.js';

export type QueuedEntry = { msg: EventMsg; receivedNs: bigint } | { echo: Buffer } | { end: true };

interface SessionQueue {
  items: QueuedEntry[];
  head: number;
}

export class ReplayQueues {
  /** Sessions with entries, in the order they are visited next. */
  readonly #bySession = new Map<PluginSession, SessionQueue>();
  #replays = 0;

  /** Replays queued, over all sessions (echoes and final frames not counted). */
  get size(): number {
    return this.#replays;
  }

  /** Sessions with anything queued. */
  get sessions(): number {
    return this.#bySession.size;
  }

  /** Whether `session` has anything queued: an echo or final frame then goes behind it. */
  has(session: PluginSession): boolean {
    return this.#bySession.has(session);
  }

  push(session: PluginSession, entry: QueuedEntry): void {
    let q = this.#bySession.get(session);
    if (!q) {
      q = { items: [], head: 0 };
      this.#bySession.set(session, q);
    }
    q.items.push(entry);
    if ('msg' in entry) this.#replays++;
  }

  /**
   * Takes up to `n` replays, one from each session in turn, each with the echoes and final frame
   * queued before its next replay; `visit` gets every entry taken, in its session's order.
   */
  take(n: number, visit: (session: PluginSession, entry: QueuedEntry) => void): void {
    let taken = 0;
    while (taken < n && this.#bySession.size > 0) {
      // Left in the map while visited: what `visit` queues for it goes behind its entries.
      const [session, q] = this.#bySession.entries().next().value as [PluginSession, SessionQueue];
      let replay = false;
      while (q.head < q.items.length) {
        const entry = q.items[q.head] as QueuedEntry;
        if ('msg' in entry) {
          if (replay) break;
          replay = true;
          taken++;
          this.#replays--;
        }
        q.items[q.head++] = undefined as unknown as QueuedEntry;
        visit(session, entry);
      }
      this.#bySession.delete(session);
      if (q.head === q.items.length) continue;
      if (q.head > 1024 && q.head * 2 > q.items.length) {
        q.items = q.items.slice(q.head);
        q.head = 0;
      }
      // To the back of the line.
      this.#bySession.set(session, q);
    }
  }
}

/**
 * The state of a sender that hands its messages to a thread of libuv's pool one at a time, in
 * order (journal.ts, notify.ts): whether one is in flight, and the waits of `drain(timeoutMs)`
 * for the moment the queue is empty.
 */
export interface SendLine {
  /** True while a message is in flight. */
  readonly sending: boolean;
  /**
   * The next message to send, taken from the front of `queue`; undefined when it is empty, and
   * then nothing is in flight any more and every {@link drain} resolves true.
   */
  take<T>(queue: { shift(): T | undefined }): T | undefined;
  /** Resolves true once nothing is queued or in flight, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
}

export function sendLine(): SendLine {
  const waiting: (() => void)[] = [];
  let sending = false;
  return {
    get sending() {
      return sending;
    },
    take(queue) {
      const next = queue.shift();
      sending = next !== undefined;
      if (!sending) for (const resolve of waiting.splice(0)) resolve();
      return next;
    },
    drain(timeoutMs) {
      if (!sending) return Promise.resolve(true);
      return new Promise((resolve) => {
        // Unref'd: a wait alone does not keep the process alive.
        const timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
        waiting.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}

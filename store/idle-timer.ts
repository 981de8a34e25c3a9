/**
 * The timer that ends a helper thread left with nothing to do, one for the store's reader and
 * retention threads (store/thread-requests.ts) and the policy loader's worker
 * (daemon/policy-worker.ts); each says why its thread is not kept.
 */

export class IdleTimer {
  readonly #ms: number | undefined;
  readonly #onIdle: () => void;
  #timer: NodeJS.Timeout | null = null;

  /** `onIdle` runs `ms` after the last `arm()` with no `clear()` since; without `ms`, never. */
  constructor(ms: number | undefined, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
  }

  /** Starts the idle time again from now (the thread has nothing left to do). */
  arm(): void {
    this.clear();
    if (this.#ms === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#onIdle();
    }, this.#ms);
    // An idle thread never keeps the process alive, nor does the timer that ends it.
    this.#timer.unref();
  }

  /** Stops the idle time (the thread is asked again, or ended). */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

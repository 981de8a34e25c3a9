/**
 * The notifications waiting to be sent while one is in flight (notify.ts), and what supersedes
 * what among them, so that a service manager that reads nothing keeps the queue small:
 *
 * - a `STATUS=` replaces every queued `STATUS=` (the text shown is the newest one);
 * - `WATCHDOG=1` is queued at most once (a second ping says nothing more);
 * - `EXTEND_TIMEOUT_USEC=` replaces one queued after the last state change;
 * - state changes keep their order and are never dropped in a way that changes what the
 *   manager learns: `READY=1` right after a queued `READY=1` replaces it (the newer status
 *   wins), `RELOADING=1` right after a queued `RELOADING=1` replaces it (the newer
 *   `MONOTONIC_USEC=` still follows the reload request), and `RELOADING=1` after a queued
 *   `RELOADING=1`, `READY=1` pair replaces the pair: the manager sees the service ready, then
 *   reloading, then ready again, with the newest stamp — as after one reload.
 *
 * The notification in flight is not in the queue and is never touched.
 */

/** What a notification is, for coalescing. `state` is anything else: kept, in order. */
export type NotificationKind = 'status' | 'watchdog' | 'extend' | 'ready' | 'reloading' | 'state';

/** One sd_notify(3) message. */
export interface Notification {
  readonly kind: NotificationKind;
  /** The newline-separated assignments sent. */
  readonly text: string;
}

/** Notifications waiting at most; past it a new one is dropped (only a caller of `send` in a loop gets there). */
export const NOTIFY_QUEUE = 64;

const isStateChange = (n: Notification): boolean =>
  n.kind === 'ready' || n.kind === 'reloading' || n.kind === 'state';

function lastStateChange(queue: readonly Notification[], before = queue.length): number {
  for (let i = before - 1; i >= 0; i--) if (isStateChange(queue[i]!)) return i;
  return -1;
}

/** Adds `n` to `queue` as described above. Returns false when it was dropped for the bound. */
export function enqueueNotification(queue: Notification[], n: Notification): boolean {
  switch (n.kind) {
    case 'watchdog':
      if (queue.some((q) => q.kind === 'watchdog')) return true;
      break;
    case 'status':
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.kind === 'status') queue.splice(i, 1);
      break;
    case 'extend': {
      const from = lastStateChange(queue) + 1;
      for (let i = queue.length - 1; i >= from; i--) if (queue[i]!.kind === 'extend') queue.splice(i, 1);
      break;
    }
    case 'ready': {
      const last = lastStateChange(queue);
      if (last >= 0 && queue[last]!.kind === 'ready') queue.splice(last, 1);
      break;
    }
    case 'reloading': {
      const last = lastStateChange(queue);
      if (last >= 0 && queue[last]!.kind === 'reloading') {
        queue.splice(last, 1);
        break;
      }
      const before = last >= 0 && queue[last]!.kind === 'ready' ? lastStateChange(queue, last) : -1;
      if (before >= 0 && queue[before]!.kind === 'reloading') {
        queue.splice(last, 1);
        queue.splice(before, 1);
      }
      break;
    }
    case 'state':
      break;
  }
  if (queue.length >= NOTIFY_QUEUE) return false;
  queue.push(n);
  return true;
}

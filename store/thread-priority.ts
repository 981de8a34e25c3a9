/**
 * The daemon's helper threads — the store's writer and reader, the policy compiler — yield the
 * CPU to the verdict path. On a busy 2-core host, a writer committing 10,000 rows, the verdict
 * path's event loop and the VMMs all want a core; with equal priority the scheduler takes the
 * event loop off its core for tens of milliseconds at a time, and a vCPU waits that long for its
 * verdict. A helper thread's work only has to keep up on average (the write-ahead file bounds
 * what it owes), so it runs at a higher nice value than the rest of the process.
 *
 * Linux applies setpriority(PRIO_PROCESS, tid) to the one thread `tid`; the thread finds its own
 * id in /proc/thread-self. Raising one's own nice value needs no privilege. Where either is not
 * available the thread keeps the process's priority: slower verdicts under load, never an error.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The nice value helper threads take (the verdict path keeps the process's own, usually 0). */
export const HELPER_THREAD_NICE = 10;

/** Called first thing in a helper thread. Returns the thread id niced, or null if it could not be. */
export function yieldToVerdictPath(nice = HELPER_THREAD_NICE): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return null;
    setPriority(tid, nice);
    return tid;
  } catch {
    return null;
  }
}

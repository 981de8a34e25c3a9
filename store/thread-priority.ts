/**
 * The daemon's helper threads that nothing on the verdict path waits for — the store's reader
 * (control-socket queries) and the policy compiler — yield the CPU to the verdict path. On a busy
 * 2-core host, a query over ten thousand rows or a 10 MB policy compile and the verdict path's
 * event loop all want a core; at equal priority the scheduler may take the event loop off its core
 * for tens of milliseconds, and a vCPU waits that long for its verdict. A query or a reload may
 * take longer instead, so these threads run at a higher nice value than the rest of the process.
 *
 * The writer thread is not niced: past its in-flight bound the verdict path waits for it, and on a
 * host whose vCPUs keep every core busy at nice 0 a niced writer would be starved — verdicts
 * would wait on it (a priority inversion). That was seen: under two busy loops a niced writer fell
 * seconds behind. It waits in SCHED_IDLE instead only while it keeps up, and the event loop moves
 * it back as soon as rows wait on it (store/write-ahead.ts, kvm/thread-policy.ts).
 *
 * Linux applies setpriority(PRIO_PROCESS, tid) to the one thread `tid`; the thread finds its own
 * id in /proc/thread-self. Raising one's own nice value needs no privilege. Where either is not
 * available the thread keeps the process's priority: slower verdicts under load, never an error.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The nice value helper threads take (the verdict path keeps the process's own, usually 0). */
export const HELPER_THREAD_NICE = 10;

/** The calling thread's id, or null where /proc/thread-self cannot be read. */
export function threadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Called first thing in a helper thread. Returns the thread id niced, or null if it could not be. */
export function yieldToVerdictPath(nice = HELPER_THREAD_NICE): number | null {
  const tid = threadId();
  if (tid === null) return null;
  try {
    setPriority(tid, nice);
    return tid;
  } catch {
    return null;
  }
}

/**
 * The scheduling policy of one of seawall's own threads (sched(7)): SCHED_IDLE, which runs a
 * thread only on a CPU nothing else wants and lets any normal thread that wakes take the CPU from
 * it at once, and back to SCHED_OTHER.
 *
 * Entering SCHED_IDLE needs no privilege; leaving it does. The kernel lets a thread leave only if
 * it may lower its nice value to the one it has (it treats SCHED_IDLE as below nice 19): RLIMIT_NICE
 * must be at least 20 − nice, or the process must hold CAP_SYS_NICE in the initial user namespace
 * (kernel/sched/syscalls.c, `user_check_sched_setscheduler`). A thread put in SCHED_IDLE without
 * that is there for good, so `mayLeaveIdle` is asked first.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority } from 'node:os';
import { errnoName, lastErrno, libc } from './libc.js';

export const SCHED_OTHER = 0;
export const SCHED_IDLE = 5;
export type ThreadPolicy = typeof SCHED_OTHER | typeof SCHED_IDLE;

/** CAP_SYS_NICE's bit in the capability sets of /proc/<pid>/status. */
const CAP_SYS_NICE = 23n;
/** The initial user namespace's inode number (PROC_USER_INIT_INO, include/linux/proc_ns.h). */
const INIT_USER_NS = 'user:[4026531837]';

/** What `mayLeaveIdle` decides from, as /proc shows it for this process. */
export interface IdleFacts {
  /** /proc/self/status */
  status: string;
  /** /proc/self/limits */
  limits: string;
  /** readlink of /proc/self/ns/user */
  userNs: string;
  /** The nice value of the thread that would leave SCHED_IDLE. */
  nice: number;
}

/**
 * Whether a thread with these facts may return from SCHED_IDLE to SCHED_OTHER. Unknown facts
 * (null: a /proc that cannot be read; or text that cannot be parsed) count as no.
 */
export function mayLeaveIdle(facts: IdleFacts | null): boolean {
  if (facts === null) return false;
  const cap = /^CapEff:\s*([0-9a-f]+)$/m.exec(facts.status);
  if (cap && facts.userNs === INIT_USER_NS && (BigInt(`0x${cap[1]}`) >> CAP_SYS_NICE) & 1n) return true;
  const limit = /^Max nice priority\s+(\d+|unlimited)\s/m.exec(facts.limits);
  if (!limit) return false;
  return limit[1] === 'unlimited' || Number(limit[1]) >= 20 - facts.nice;
}

/** The facts of this process, with the calling thread's nice value; null when /proc cannot be read. */
export function idleFacts(): IdleFacts | null {
  try {
    return {
      status: readFileSync('/proc/self/status', 'utf8'),
      limits: readFileSync('/proc/self/limits', 'utf8'),
      userNs: readlinkSync('/proc/self/ns/user'),
      nice: getPriority(),
    };
  } catch {
    return null;
  }
}

/** Sets thread `tid`'s policy; null when done, else why not (an errno's name). Never throws. */
export function setThreadPolicy(tid: number, policy: ThreadPolicy): string | null {
  try {
    return libc().schedSetscheduler(tid, policy) === 0 ? null : errnoName(lastErrno());
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The fields of a `/proc/<pid>/stat` (or task stat) line from field 3, the state, on: index 0 is
 * field 3, so field n is at n − 3. The command name before them may hold spaces and parentheses,
 * so they start past the last ')'.
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Thread `tid`'s policy (field 41 of its stat), null when it cannot be read. */
export function threadPolicy(tid: number): number | null {
  try {
    const policy = Number(statFields(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))[38]);
    return Number.isInteger(policy) ? policy : null;
  } catch {
    return null;
  }
}

/**
 * What the socket benchmark reads and sets of a process: CPU time and resident set from /proc,
 * and which CPUs a thread may run on (taskset, util-linux).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { statFields } from '../kvm/index.js';

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time (user + system, ms) of a process's main thread — a daemon's event loop — and of all its threads. */
export function cpuMs(pid: number): { loop: number; all: number } {
  const ticks = (stat: string) => {
    // utime and stime are fields 14 and 15.
    const f = statFields(stat);
    return Number(f[11]) + Number(f[12]);
  };
  return {
    loop: ticks(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')) * TICK_MS,
    all: ticks(readFileSync(`/proc/${pid}/stat`, 'utf8')) * TICK_MS,
  };
}

/** Resident set of a process, MB (10^6 bytes, as the goal's "100 MB"; /proc's kB are KiB). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? (Number(m[1]) * 1024) / 1e6 : Number.NaN;
}

/**
 * The CPUs one thread may run on, as taskset's hex mask (the main thread's, for a pid); null
 * without taskset (util-linux), when the one-CPU latency is left out.
 */
export function affinity(tid: number): string | null {
  try {
    const out = execFileSync('taskset', ['-p', String(tid)], { encoding: 'utf8' });
    return /mask: ([0-9a-f]+)/.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Moves only the thread `tid` (a process's main thread: its event loop) to the CPUs of `mask`. */
export function pin(tid: number, mask: string): void {
  execFileSync('taskset', ['-p', mask, String(tid)], { stdio: 'ignore' });
}

/** The lowest CPU this process may use, as a mask: where the one-CPU latency is measured. */
export function oneCpuMask(): string | null {
  const mine = affinity(process.pid);
  if (mine === null) return null;
  const bits = BigInt(`0x${mine}`);
  return (bits & -bits).toString(16);
}

/** How many `untilQuiet` waits reached their deadline. */
export let stillBusy = 0;

/** Each thread's CPU time so far, ns (schedstat's first field), by thread id. */
function threadNs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // A thread that ended after the listing.
    }
  }
  return out;
}

/** The CPU time, ns, the threads of two readings used between them (a new thread: all of its). */
function usedNs(before: Map<string, number>, after: Map<string, number>): number {
  let ns = 0;
  for (const [tid, t] of after) ns += t - (before.get(tid) ?? 0);
  return ns;
}

/**
 * Waits until the process `pid` uses less than `maxNs` of CPU over `quietMs`, all its threads
 * together, read in ns (not in clock ticks of 10 ms, which a thread busy 10–15 % of a CPU can go
 * without for 60 ms): a daemon's writer thread catching up after a round must neither run beside
 * the next target's round nor be left out of this one's CPU. Counts in `stillBusy` a wait that
 * reaches `deadlineMs`.
 */
export async function untilQuiet(pid: number, quietMs = 60, deadlineMs = 10_000, maxNs = 1e6): Promise<void> {
  const end = performance.now() + deadlineMs;
  let last = threadNs(pid);
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = threadNs(pid);
    if (usedNs(last, now) < maxNs) return;
    last = now;
  }
  stillBusy++;
}

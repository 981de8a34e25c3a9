/**
 * PID reuse on demand (root): /proc/sys/kernel/ns_last_pid makes `pid` the next number handed out,
 * and the spawn is retried when another process takes it first. Every process started is handed
 * to `started`, for the test's after-hook to kill.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Pidfd, SIGKILL } from '../../kvm/index.js';

/** Spawns `file args` until one gets `pid`; null when 50 tries did not (a busy machine took it). */
export async function spawnWithPid(
  pid: number,
  file: string,
  args: string[],
  opts: SpawnOptions,
  started: ChildProcess[],
): Promise<ChildProcess | null> {
  for (let i = 0; i < 50; i++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const p = spawn(file, args, opts);
    started.push(p);
    await new Promise((r) => p.once('spawn', r));
    if (p.pid === pid) return p;
    p.kill('SIGKILL');
  }
  return null;
}

/**
 * A process the test learnt of by PID (a child of one it started), named by a pidfd taken at once:
 * by the after-hook the PID may name another process, these tests force PIDs to be reused, and
 * another test file runs beside this one. null when it is already gone.
 */
export function learnt(pid: number): Pidfd | null {
  try {
    return Pidfd.open(pid);
  } catch {
    return null;
  }
}

/** Kills what a PID-reuse test started, and the processes it learnt of (their children). */
export function killStarted(started: ChildProcess[], learntOf: (Pidfd | null)[]): void {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const pidfd of learntOf) {
    pidfd?.signal(SIGKILL); // 'gone' once it has exited, whoever has its PID now
    pidfd?.close();
  }
}

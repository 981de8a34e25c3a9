/**
 * One VM instance across daemon restarts: the VM id, the VMM process that serves it (the plugin
 * connection's peer pid) and that process's start time. Two live processes never share a pid, and
 * a pid handed on to a new process comes with a new start time, so the three together name one run
 * of one VMM for one VM: a VMM restarted, or a pid reused, is another instance.
 */
import { readFileSync } from 'node:fs';
import { statFields } from '../kvm/index.js';

export interface VmInstance {
  vm: string;
  pid: number;
  /** When the process started, in clock ticks after boot (field 22 of /proc/<pid>/stat). */
  startTicks: number;
}

/** When process `pid` started (field 22 of its /proc stat), or null when that cannot be read. */
export function processStartTicks(pid: number): number | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const ticks = Number(statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[19]);
    return Number.isSafeInteger(ticks) && ticks >= 0 ? ticks : null;
  } catch {
    return null;
  }
}

export const sameInstance = (a: VmInstance, b: VmInstance): boolean =>
  a.vm === b.vm && a.pid === b.pid && a.startTicks === b.startTicks;

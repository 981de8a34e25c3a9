/** The VMM's reports (vmm/arm64/report.c), typed for the lane test. */
import type { Report } from '../../scripts/real-kvm/control.js';

export interface Step {
  vm: string;
  vcpu: number;
  step: string;
  kind: 'mmio' | 'nisv' | 'sigbus' | 'sea';
  addr: string;
  exit: number;
  runErrno: number;
  /**
   * mmio: phys_addr, len, is_write, data (zero for a load); nisv: esr_iss, fault_ipa; sigbus: code,
   * si_addr, lsb, gpa; sea (never under the lane's emulation): flags, esr, gva, gpa.
   */
  f: string[];
  fallback: number;
  action: string;
  flags: number;
  grace: number;
  vesr: string;
  image: string;
  applied: number;
  /** The guest's PC at the exit. */
  pc: string;
  reported: number;
  vector: number;
  esr: string;
  far: string;
  elr: string;
  finished: number;
}

export interface StoredEventJson {
  vm: string;
  vcpu: number | null;
  kind: string;
  gpa: string | null;
  sigbusCode: string | null;
  replay: boolean;
  /** The fallback the guest got instead of the verdict (a late verdict, reported by 1.1's APPLIED). */
  fallbackAction: number | null;
  applied: number | null;
  rule: string | null;
}

export interface LaneRun {
  reports: Report[];
  killMetrics: string;
  /** From the VMM's `killed` report to the first kill outcome in the metrics (or the poll's end). */
  killOutcomeAfterMs: number;
  vmsDuringKill: unknown;
  qemuExit: number | null | string;
  builtinEvents: StoredEventJson[];
  policyEvents: StoredEventJson[];
  builtinMetrics: string;
  policyMetrics: string;
}

const KIND_OF_EXIT: Record<number, Step['kind']> = { 6: 'mmio', 28: 'nisv', 10: 'sigbus', 41: 'sea' };

export function stepsOf(reports: readonly Report[]): Step[] {
  return reports
    .filter((r) => r.t === 'step')
    .map((r) => ({ ...(r as unknown as Step), kind: KIND_OF_EXIT[Number(r.exit)] ?? 'mmio' }));
}

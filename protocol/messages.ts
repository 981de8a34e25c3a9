/**
 * Protocol messages as a closed union. Field layouts are in docs/protocol.md; codec.ts is the
 * only place that knows offsets.
 */

/** Fields every event body starts with. */
export interface EventHeader {
  seq: number;
  /** vCPU index; null (NO_VCPU on the wire) only for sigbus. */
  vcpu: number | null;
  /** CLOCK_REALTIME nanoseconds when the plugin saw the exit. */
  timeNs: bigint;
  /** True for an event the plugin already handled by fallback (reported after reconnecting). */
  replay: boolean;
  /** For replays: the ACTION code the plugin applied locally. */
  fallbackAction: number;
}

export interface SeaEventMsg extends EventHeader {
  type: 'sea';
  /** kvm_run.arm_sea as the plugin copied it. */
  kvmFlags: bigint;
  esr: bigint;
  gva: bigint;
  gpa: bigint;
}
export interface NisvEventMsg extends EventHeader {
  type: 'nisv';
  esrIss: bigint;
  faultIpa: bigint;
}
export interface MmioEventMsg extends EventHeader {
  type: 'mmio';
  physAddr: bigint;
  data: Uint8Array;
  len: number;
  isWrite: boolean;
}
export interface SigbusEventMsg extends EventHeader {
  type: 'sigbus';
  /** BUS_MCEERR_AR (4) or BUS_MCEERR_AO (5). */
  siCode: number;
  addrLsb: number;
  /** Guest physical address the VMM translated the faulting host address to; null when unknown. */
  gpa: bigint | null;
}
export type EventMsg = SeaEventMsg | NisvEventMsg | MmioEventMsg | SigbusEventMsg;

export interface HelloMsg {
  type: 'hello';
  /** Major version (1). */
  version: number;
  /** Minor version: 0 (1.0, also when absent) or 1 (1.1). */
  minor?: number;
  caps: number;
  vmmPid: number;
  vcpuCount: number;
  /** KVM capability number of the posted IABT/ESR ABI on this host; 0 when absent. */
  extAbtEsrCap: number;
  vmId: string;
  labels: Record<string, string>;
}
export interface WelcomeMsg {
  type: 'welcome';
  version: number;
  /** The minor version of this session (0 when absent). */
  minor?: number;
  maxInFlight: number;
  sessionId: bigint;
  heartbeatMs: number;
  /** 1.1: the largest frame body the daemon accepts; 0 in a 1.0 WELCOME. */
  maxBody?: number;
}
/** A version, as REJECT VERSION names the highest one the daemon speaks. */
export interface ProtocolVersion {
  major: number;
  minor: number;
}
export interface RejectMsg {
  type: 'reject';
  code: number;
  message: string;
  /** REJECT VERSION only: the highest version the daemon speaks (4 bytes after the text). */
  supported?: ProtocolVersion;
}
export interface VerdictMsg {
  type: 'verdict';
  seq: number;
  action: number;
  flags: number;
  graceMs: number;
  /** For INJECT_EMULATED: the ESR to emulate (EC for a lower EL; the plugin adjusts it to the guest's mode). */
  esr: bigint;
  /** For INJECT: the exact kvm_vcpu_events image; zeros otherwise. */
  vcpuEvents: Uint8Array;
}
export interface AppliedMsg {
  type: 'applied';
  seq: number;
  /** 0, or -errno from the plugin's ioctl. */
  result: number;
  /**
   * 1.1 (a 16-byte body): the ACTION code the vCPU actually got, and whose answer it was — the
   * VERDICT's, or the plugin's fallback when the VERDICT came after it. Absent in 1.0.
   */
  applied?: { action: number; source: number };
}
export interface HeartbeatMsg {
  type: 'heartbeat';
  nonce: bigint;
}
export interface ErrorMsg {
  type: 'error';
  code: number;
  message: string;
}
export interface GoodbyeMsg {
  type: 'goodbye';
  reason: number;
}

export type Message =
  | HelloMsg
  | WelcomeMsg
  | RejectMsg
  | EventMsg
  | VerdictMsg
  | AppliedMsg
  | HeartbeatMsg
  | ErrorMsg
  | GoodbyeMsg;
export type MessageType = Message['type'];

/**
 * The seawall plugin protocol, version 1.1 (docs/protocol.md is the normative text). Frames are
 * little endian: an 8-byte header — u32 body length, u16 type, u16 reserved (0) — then the body.
 * Every event and verdict body has a fixed size, so a C plugin needs no parser beyond memcpy.
 */

/** The major version: HELLO +0. A daemon answers any other major with REJECT VERSION. */
export const PROTOCOL_VERSION = 1;
/**
 * The highest minor version this code speaks: HELLO +2 and WELCOME +2 (reserved, so 0, in 1.0).
 * A session speaks the minor its HELLO asked for; 0 is the 1.0 protocol, unchanged.
 */
export const PROTOCOL_MINOR = 1;
export const HEADER_SIZE = 8;

/** Message type codes. The high nibble groups them: 0x0_ session, 0x1_ events, 0x2_ verdicts, 0x3_ control. */
export const MSG = {
  HELLO: 0x01,
  WELCOME: 0x02,
  REJECT: 0x03,
  EVENT_SEA: 0x10,
  EVENT_NISV: 0x11,
  EVENT_MMIO: 0x12,
  EVENT_SIGBUS: 0x13,
  VERDICT: 0x20,
  APPLIED: 0x21,
  HEARTBEAT: 0x30,
  ERROR: 0x31,
  GOODBYE: 0x32,
} as const;
export type MessageTypeCode = (typeof MSG)[keyof typeof MSG];
export const MESSAGE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(MSG).map(([k, v]) => [v, k]),
);

/** Limits; each is enforced before the bytes are buffered (docs/protocol.md "Limits"). */
export const LIMITS = {
  /** Largest frame body accepted, in bytes (a HELLO with 32 full labels fits). */
  maxBody: 16 * 1024,
  vmIdMax: 128,
  labelKeyMax: 63,
  labelValueMax: 255,
  labelsMax: 32,
  vcpusMax: 4096,
  messageTextMax: 1024,
  /** The largest valid HELLO body (128-byte id, 32 labels of 63 + 255 bytes): maxBody's floor. */
  largestHello: 24 + 128 + 32 * (4 + 63 + 255),
} as const;

/** Fixed body sizes. */
export const BODY_SIZE = {
  EVENT_SEA: 56,
  EVENT_NISV: 40,
  EVENT_MMIO: 48,
  EVENT_SIGBUS: 40,
  VERDICT: 88,
  /** APPLIED in a 1.0 session: seq and result. */
  APPLIED: 8,
  /** APPLIED in a 1.1 session: also what was applied, and whose answer it was. */
  APPLIED_V11: 16,
  HEARTBEAT: 8,
  WELCOME: 24,
  GOODBYE: 4,
} as const;

/** HELLO capability bits: what the plugin's host and VMM can do. */
export const CAP = {
  SEA_TO_USER: 1 << 0,
  INJECT_EXT_DABT: 1 << 1,
  /** The posted IABT/chosen-ESR kvm_vcpu_events ABI (§3b); its KVM cap number travels in HELLO. */
  EXT_ABT_ESR: 1 << 2,
  /** The VMM can emulate an abort by register writes (ESR_EL1, FAR_EL1, ELR_EL1, SPSR_EL1, PC, PSTATE). */
  EMULATE_ABORT: 1 << 3,
  /** FEAT_RAS on the host and exposed to the guest. */
  RAS: 1 << 4,
  NISV_TO_USER: 1 << 5,
} as const;
export const CAP_ALL = Object.values(CAP).reduce((a, b) => a | b, 0);

/** Event flag bits (u16 in every event body). */
export const EVENT_FLAG = {
  /** Handled by the plugin's local fallback while the daemon was away; recorded, never answered. */
  REPLAY: 1 << 0,
} as const;

/** VERDICT actions (u8). */
export const ACTION = {
  /** Nothing to apply: resume the vCPU. */
  RESUME: 0,
  /** Apply the 64-byte kvm_vcpu_events image with KVM_SET_VCPU_EVENTS on the vCPU thread. */
  INJECT: 1,
  /** Emulate the abort by register writes, with the ESR in the verdict (EC adjusted to the guest's EL). */
  INJECT_EMULATED: 2,
  /** Terminate the VM within grace_ms; the daemon enforces it afterwards. */
  KILL: 3,
} as const;
export type ActionCode = (typeof ACTION)[keyof typeof ACTION];

const ACTION_NAMES = new Map<number, string>(Object.entries(ACTION).map(([k, v]) => [v, k.toLowerCase()]));

/** An ACTION code's name in lower case (`inject`, `kill`); `action N` for a code no version defines. */
export function actionName(code: number): string {
  return ACTION_NAMES.get(code) ?? `action ${code}`;
}

/** VERDICT flag bits (u8). */
export const VERDICT_FLAG = {
  /** A migration of this VM has been requested; the injection is what the vCPU gets meanwhile. */
  MIGRATING: 1 << 0,
  /** Decided by a dry-run policy: this is the default answer, not the policy's own. */
  DRY_RUN: 1 << 1,
  /** The rule asked for more than the host can inject; its onUnsupported chose this instead. */
  DOWNGRADED: 1 << 2,
} as const;

/** APPLIED (1.1) `source`: whose answer the vCPU got. */
export const APPLIED_SOURCE = {
  /** The daemon's VERDICT for this seq. */
  VERDICT: 0,
  /** The plugin's own fallback, applied before the VERDICT arrived (the VERDICT was then discarded). */
  FALLBACK: 1,
} as const;

/** `kvm_run.mmio.len` values an access can have (Arm ARM: byte, halfword, word, doubleword). */
export const MMIO_LENS: ReadonlySet<number> = new Set([1, 2, 4, 8]);

/** SIGBUS si_code values for memory errors (include/uapi/asm-generic/siginfo.h). */
export const BUS_MCEERR_AR = 4;
export const BUS_MCEERR_AO = 5;

/** Sentinel values in fixed-size fields. */
export const NO_VCPU = 0xffffffff;
export const NO_GPA = 0xffffffffffffffffn;

/** Error codes carried by ERROR and REJECT frames (u16). */
export const WIRE_ERROR = {
  BAD_FRAME: 1,
  OVERSIZE: 2,
  UNKNOWN_TYPE: 3,
  NOT_HELLO_FIRST: 4,
  VERSION: 5,
  BAD_FIELD: 6,
  DUPLICATE_HELLO: 7,
  VM_IN_USE: 8,
  TOO_MANY_SESSIONS: 9,
  UNAUTHORIZED: 10,
  UNEXPECTED_TYPE: 11,
  SHUTTING_DOWN: 12,
  INTERNAL: 13,
} as const;
export type WireErrorName = keyof typeof WIRE_ERROR;
export const WIRE_ERROR_NAMES: ReadonlyMap<number, WireErrorName> = new Map(
  Object.entries(WIRE_ERROR).map(([k, v]) => [v, k as WireErrorName]),
);

/** GOODBYE reasons (u16). */
export const GOODBYE_REASON = { NORMAL: 0, SHUTDOWN: 1, VM_EXITING: 2 } as const;

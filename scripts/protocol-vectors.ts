/**
 * The protocol's byte vectors, in one place: each is a Message whose bytes come from protocol/'s
 * encoder. docs/protocol.md §11 shows every one as an annotated dump (scripts/protocol-dumps.ts),
 * and the conformance suite (test/protocol/conformance/) plays them to every plugin
 * implementation and compares what the plugin sends with them.
 */
import { buildVerdict } from '../daemon/verdict.js';
import { encodeInjection } from '../kvm/vcpu-events.js';
import { actionFor, type Decision, type HostCapabilities } from '../policies/index.js';
import {
  ACTION,
  APPLIED_SOURCE,
  CAP,
  GOODBYE_REASON,
  type Message,
  VERDICT_FLAG,
  WIRE_ERROR,
} from '../protocol/index.js';

export interface DumpExample {
  /** Marker id in docs/protocol.md: `<!-- dump:ID -->` … `<!-- /dump:ID -->`. */
  id: string;
  direction: 'plugin → daemon' | 'daemon → plugin' | 'both ways';
  message: Message;
  /** The minor version of the session the frame belongs to (its size rules): 1 unless it is a 1.0 frame. */
  minor: number;
}

const SEA_TO_USER_ESR = (0x24n << 26n) | (1n << 25n) | 0x10n; // EC DABT_LOW, IL, FSC 0x10: 0x92000010
const TIME_NS = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const ZERO64 = new Uint8Array(64);
const EMULATING_HOST: HostCapabilities = { abi: 'merged', ras: true, emulateAbort: true };

/**
 * What the daemon answers a BUS_MCEERR_AR on vCPU 0 with, on a host whose VMM emulates, under a
 * rule that injects a data abort with the default onUnsupported: computed by the daemon's own
 * policy resolution and verdict builder, so the dump is the daemon's answer, not a hope.
 */
function sigbusEmulatedVerdict(seq: number): Message {
  const outcome = actionFor({ type: 'inject', abort: 'data' }, EMULATING_HOST, 'sigbus-vcpu', ['downgrade']);
  const decision: Decision = {
    policyVersion: 'dump',
    rule: 'inject-data',
    ...outcome.decision,
    ...(outcome.downgrade ? { downgrade: outcome.downgrade } : {}),
  } as Decision;
  const { verdict } = buildVerdict(seq, decision, 'sigbus', EMULATING_HOST, true, false);
  return { type: 'verdict', ...verdict };
}

/**
 * The examples, in the order the doc shows them. They are also the conformance suite's byte
 * vectors (test/protocol/conformance/): what a plugin must send, and what it is sent.
 */
export const EXAMPLES: readonly DumpExample[] = [
  {
    id: 'hello',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'hello',
      version: 1,
      minor: 1,
      caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.NISV_TO_USER,
      vmmPid: 4242,
      vcpuCount: 4,
      extAbtEsrCap: 0,
      vmId: 'vm-7',
      labels: { tenant: 'acme' },
    },
  },
  {
    id: 'welcome',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'welcome',
      version: 1,
      minor: 1,
      maxInFlight: 1024,
      sessionId: 1n,
      heartbeatMs: 5000,
      maxBody: 16384,
    },
  },
  {
    id: 'hello-v10',
    direction: 'plugin → daemon',
    minor: 0,
    message: {
      type: 'hello',
      version: 1,
      minor: 0,
      caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.NISV_TO_USER,
      vmmPid: 4242,
      vcpuCount: 4,
      extAbtEsrCap: 0,
      vmId: 'vm-7',
      labels: { tenant: 'acme' },
    },
  },
  {
    id: 'welcome-v10',
    direction: 'daemon → plugin',
    minor: 0,
    message: {
      type: 'welcome',
      version: 1,
      minor: 0,
      maxInFlight: 1024,
      sessionId: 1n,
      heartbeatMs: 5000,
      maxBody: 0,
    },
  },
  {
    id: 'reject',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'reject',
      code: WIRE_ERROR.VM_IN_USE,
      message: "VM id 'vm-7' is held by a live session",
    },
  },
  {
    id: 'reject-version',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'reject',
      code: WIRE_ERROR.VERSION,
      message: 'protocol version 2.0 is not spoken here (the highest is 1.1)',
      supported: { major: 1, minor: 1 },
    },
  },
  {
    id: 'event-sea',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'sea',
      seq: 1,
      vcpu: 0,
      timeNs: TIME_NS,
      replay: false,
      fallbackAction: 0,
      kvmFlags: 1n,
      esr: SEA_TO_USER_ESR,
      gva: 0x81234badn,
      gpa: 0x4_5678_b000n,
    },
  },
  {
    id: 'event-sea-replay',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'sea',
      seq: 2,
      vcpu: 1,
      timeNs: TIME_NS + 2_000_000n,
      replay: true,
      fallbackAction: ACTION.INJECT,
      kvmFlags: 1n,
      esr: SEA_TO_USER_ESR,
      gva: 0x81234badn,
      gpa: 0x4_5678_b000n,
    },
  },
  {
    id: 'event-nisv',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'nisv',
      seq: 3,
      vcpu: 1,
      timeNs: TIME_NS,
      replay: false,
      fallbackAction: 0,
      esrIss: 0x07n,
      faultIpa: 0x800_0000n,
    },
  },
  {
    id: 'event-mmio',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'mmio',
      seq: 4,
      vcpu: 2,
      timeNs: TIME_NS,
      replay: false,
      fallbackAction: 0,
      physAddr: 0x800_0000n,
      data: new Uint8Array(8),
      len: 8,
      isWrite: false,
    },
  },
  {
    id: 'event-sigbus',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'sigbus',
      seq: 5,
      vcpu: null,
      timeNs: TIME_NS,
      replay: false,
      fallbackAction: 0,
      siCode: 5,
      addrLsb: 12,
      gpa: null,
    },
  },
  {
    id: 'verdict-inject',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'verdict',
      seq: 1,
      action: ACTION.INJECT,
      flags: 0,
      graceMs: 0,
      esr: 0n,
      vcpuEvents: new Uint8Array(encodeInjection({ kind: 'data' }, { abi: 'merged', ras: true })),
    },
  },
  {
    id: 'verdict-inject-ext-abt',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'verdict',
      seq: 6,
      action: ACTION.INJECT,
      flags: 0,
      graceMs: 0,
      esr: 0n,
      vcpuEvents: new Uint8Array(
        encodeInjection(
          { kind: 'instruction', iss: (1 << 10) | (1 << 9) },
          { abi: 'ext-abt-esr', ras: true },
        ),
      ),
    },
  },
  {
    id: 'verdict-emulated',
    direction: 'daemon → plugin',
    minor: 1,
    message: sigbusEmulatedVerdict(10),
  },
  {
    id: 'verdict-kill',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'verdict',
      seq: 7,
      action: ACTION.KILL,
      flags: 0,
      graceMs: 5000,
      esr: 0n,
      vcpuEvents: ZERO64,
    },
  },
  {
    id: 'verdict-resume-migrating',
    direction: 'daemon → plugin',
    minor: 1,
    message: {
      type: 'verdict',
      seq: 8,
      action: ACTION.RESUME,
      flags: VERDICT_FLAG.MIGRATING,
      graceMs: 0,
      esr: 0n,
      vcpuEvents: ZERO64,
    },
  },
  {
    id: 'applied',
    direction: 'plugin → daemon',
    minor: 1,
    message: { type: 'applied', seq: 6, result: -22 },
  },
  {
    id: 'applied-fallback',
    direction: 'plugin → daemon',
    minor: 1,
    message: {
      type: 'applied',
      seq: 9,
      result: 0,
      applied: { action: ACTION.INJECT, source: APPLIED_SOURCE.FALLBACK },
    },
  },
  {
    id: 'heartbeat',
    direction: 'both ways',
    minor: 1,
    message: { type: 'heartbeat', nonce: 0x0123456789abcdefn },
  },
  {
    id: 'error',
    direction: 'daemon → plugin',
    minor: 1,
    message: { type: 'error', code: WIRE_ERROR.BAD_FIELD, message: 'vCPU 9 out of range' },
  },
  {
    id: 'goodbye',
    direction: 'both ways',
    minor: 1,
    message: { type: 'goodbye', reason: GOODBYE_REASON.NORMAL },
  },
];

/** One vector by id; throws for an id that does not exist (a typo in a test). */
export function vector(id: string): DumpExample {
  const v = EXAMPLES.find((e) => e.id === id);
  if (!v) throw new Error(`no protocol vector '${id}'`);
  return v;
}

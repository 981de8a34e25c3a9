/**
 * ESR_ELx decoding for the aborts KVM reports (reference §6; Arm ARM D24.2.40 "ESR_EL2").
 * `decodeEsr` accepts any 64-bit value and never throws for one: exception classes other than
 * aborts are named and their ISS is left undecoded.
 */
import {
  ESR_EC_DABT_CUR,
  ESR_EC_DABT_LOW,
  ESR_EC_IABT_CUR,
  ESR_EC_IABT_LOW,
  ESR_EC_SERROR,
  FSC_PARITY,
  FSC_PARITY_WALK_FIRST,
  FSC_PARITY_WALK_LAST,
  FSC_SEA,
  FSC_SEA_WALK_FIRST,
  FSC_SEA_WALK_LAST,
  ISS_MASK,
} from './constants.js';
import { KvmError } from './errors.js';

const U64_MAX = (1n << 64n) - 1n;

/** Severity from ESR.SET [12:11], meaningful only with FSC 0x10. */
export type Severity = 'uer' | 'uc' | 'ueo' | 'reserved';
const SET_TO_SEVERITY: readonly Severity[] = ['uer', 'reserved', 'uc', 'ueo'];
export const SEVERITY_TO_SET: Readonly<Record<Exclude<Severity, 'reserved'>, number>> = {
  uer: 0,
  uc: 2,
  ueo: 3,
};

/** What the fault status code says, by class. `level` is the translation table level, -1..3. */
export type FscClass =
  | { kind: 'sea' }
  | { kind: 'sea-walk'; level: number }
  | { kind: 'parity' }
  | { kind: 'parity-walk'; level: number }
  | { kind: 'other' };

export function classifyFsc(fsc: number): FscClass {
  if (fsc === FSC_SEA) return { kind: 'sea' };
  if (fsc >= FSC_SEA_WALK_FIRST && fsc <= FSC_SEA_WALK_LAST) return { kind: 'sea-walk', level: fsc - 0x14 };
  if (fsc === FSC_PARITY) return { kind: 'parity' };
  if (fsc >= FSC_PARITY_WALK_FIRST && fsc <= FSC_PARITY_WALK_LAST)
    return { kind: 'parity-walk', level: fsc - 0x1c };
  return { kind: 'other' };
}

/** Exception classes with a name; anything else decodes as `other`. */
const EC_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, 'unknown-reason'],
  [0x01, 'wfx'],
  [0x07, 'fp-access'],
  [0x0e, 'illegal-execution-state'],
  [0x15, 'svc64'],
  [0x16, 'hvc64'],
  [0x17, 'smc64'],
  [0x18, 'sys64'],
  [ESR_EC_IABT_LOW, 'iabt-lower-el'],
  [ESR_EC_IABT_CUR, 'iabt-current-el'],
  [0x22, 'pc-alignment'],
  [ESR_EC_DABT_LOW, 'dabt-lower-el'],
  [ESR_EC_DABT_CUR, 'dabt-current-el'],
  [0x26, 'sp-alignment'],
  [0x2c, 'fp-exception64'],
  [ESR_EC_SERROR, 'serror'],
  [0x30, 'breakpoint-lower-el'],
  [0x31, 'breakpoint-current-el'],
  [0x32, 'software-step-lower-el'],
  [0x33, 'software-step-current-el'],
  [0x34, 'watchpoint-lower-el'],
  [0x35, 'watchpoint-current-el'],
  [0x3c, 'brk64'],
]);

/** Access fields valid only when ISV = 1 (data aborts). */
export interface AccessSyndrome {
  /** log2 of the access size in bytes (SAS [23:22]). */
  sas: number;
  sse: boolean;
  srt: number;
  sf: boolean;
  ar: boolean;
}

/** The ISS of a data or instruction abort, field by field. */
export interface AbortSyndrome {
  kind: 'data' | 'instruction';
  /** EC 0x20/0x24: taken from a lower exception level (the guest); 0x21/0x25: the current one. */
  fromLowerEl: boolean;
  isv: boolean;
  access: AccessSyndrome | null;
  vncr: boolean;
  /** SET [12:11] as raw bits; meaningful only when fsc is 0x10. */
  set: number;
  /** Severity from SET when fsc is 0x10, else null. */
  severity: Severity | null;
  fnv: boolean;
  ea: boolean;
  cm: boolean;
  s1ptw: boolean;
  wnr: boolean;
  fsc: number;
  fscClass: FscClass;
}

export interface Esr {
  raw: bigint;
  ec: number;
  ecName: string;
  il: boolean;
  iss: number;
  iss2: number;
  /** Present for the four abort exception classes, null for every other class. */
  abort: AbortSyndrome | null;
}

const bit = (v: number, n: number): boolean => ((v >>> n) & 1) === 1;

/** Decodes the ISS [24:0] of an abort. Exported for ISS round-trip checks. */
export function decodeAbortIss(
  iss: number,
  kind: 'data' | 'instruction',
  fromLowerEl: boolean,
): AbortSyndrome {
  const isv = kind === 'data' && bit(iss, 24);
  const fsc = iss & 0x3f;
  const set = (iss >>> 11) & 0x3;
  return {
    kind,
    fromLowerEl,
    isv,
    access: isv
      ? {
          sas: (iss >>> 22) & 0x3,
          sse: bit(iss, 21),
          srt: (iss >>> 16) & 0x1f,
          sf: bit(iss, 15),
          ar: bit(iss, 14),
        }
      : null,
    vncr: bit(iss, 13),
    set,
    severity: fsc === FSC_SEA ? (SET_TO_SEVERITY[set] as Severity) : null,
    fnv: bit(iss, 10),
    ea: bit(iss, 9),
    cm: bit(iss, 8),
    s1ptw: bit(iss, 7),
    wnr: kind === 'data' && bit(iss, 6),
    fsc,
    fscClass: classifyFsc(fsc),
  };
}

/** Decodes a 64-bit ESR value. Throws SEAWALL_KVM_ESR_INVALID only for a value outside u64. */
export function decodeEsr(raw: bigint): Esr {
  if (typeof raw !== 'bigint' || raw < 0n || raw > U64_MAX) {
    throw new KvmError(
      'SEAWALL_KVM_ESR_INVALID',
      `ESR must be an unsigned 64-bit integer, got ${String(raw)}`,
    );
  }
  const low = Number(raw & 0xffffffffn);
  const ec = (low >>> 26) & 0x3f;
  const iss = low & ISS_MASK;
  let abort: AbortSyndrome | null = null;
  if (ec === ESR_EC_DABT_LOW || ec === ESR_EC_DABT_CUR)
    abort = decodeAbortIss(iss, 'data', ec === ESR_EC_DABT_LOW);
  else if (ec === ESR_EC_IABT_LOW || ec === ESR_EC_IABT_CUR)
    abort = decodeAbortIss(iss, 'instruction', ec === ESR_EC_IABT_LOW);
  return {
    raw,
    ec,
    ecName: EC_NAMES.get(ec) ?? 'other',
    il: bit(low, 25),
    iss,
    iss2: Number((raw >> 32n) & 0xffffffn),
    abort,
  };
}

/**
 * Parses an ESR written by a person or a script: `0x…` hex, `0b…` binary or decimal. Anything
 * else, a negative number or one wider than 64 bits is SEAWALL_KVM_ESR_INVALID.
 */
export function parseEsr(text: string): bigint {
  const t = text.trim().replaceAll('_', '');
  if (!/^(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)$/.test(t)) {
    throw new KvmError(
      'SEAWALL_KVM_ESR_INVALID',
      `not a number: '${text}' (use hex like 0x92000410 or decimal)`,
    );
  }
  const value = BigInt(t);
  if (value > U64_MAX) {
    throw new KvmError(
      'SEAWALL_KVM_ESR_INVALID',
      `'${text}' is wider than 64 bits; an ESR is a 64-bit register`,
    );
  }
  return value;
}

/** ISV [24], [23:14], VNCR [13], S1PTW [7], ISS2 [55:32] and RES0 [63:56]. */
const SEA_CLEARED_BITS = (0xffffffffn << 32n) | (1n << 24n) | (0x3ffn << 14n) | (1n << 13n) | (1n << 7n);
const CONFORMING: readonly string[] = Object.freeze([]);

/**
 * ESR bits a conforming kernel clears in `kvm_run.arm_sea.esr` (reference §2): ISV [24], the
 * instruction-syndrome fields [23:14], VNCR [13], S1PTW [7] and ISS2 [55:32]. A non-empty result
 * means the value did not come from a conforming kernel.
 */
export function nonConformingSeaEsrBits(raw: bigint): readonly string[] {
  if ((raw & SEA_CLEARED_BITS) === 0n) return CONFORMING;
  const found: string[] = [];
  const low = Number(raw & 0xffffffffn);
  if (bit(low, 24)) found.push('ISV');
  if ((low >>> 14) & 0x3ff) found.push('ISS[23:14]');
  if (bit(low, 13)) found.push('VNCR');
  if (bit(low, 7)) found.push('S1PTW');
  if ((raw >> 32n) & 0xffffffn) found.push('ISS2');
  if (raw >> 56n) found.push('RES0[63:56]');
  return found;
}

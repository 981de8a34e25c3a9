/**
 * Building the ISS [24:0] that a chosen-syndrome injection carries (reference §3b, §6).
 * Only the fields that make sense for an injected synchronous external abort can be named;
 * a raw ISS is accepted when it fits in [24:0].
 */
import { FSC_SEA, ISS_MASK } from './constants.js';
import { KvmError } from './errors.js';
import { SEVERITY_TO_SET, type Severity } from './esr.js';

/** Named ISS fields for an injected abort. Omitted booleans are 0; `fsc` defaults to 0x10. */
export interface IssFields {
  /** Error severity (ESR.SET); requires fsc 0x10. */
  set?: Exclude<Severity, 'reserved'>;
  /** FAR not valid. */
  fnv?: boolean;
  /** External abort type (implementation defined). */
  ea?: boolean;
  /** Cache maintenance. */
  cm?: boolean;
  /** Write not read; data aborts only (RES0 in an instruction abort). */
  wnr?: boolean;
  /** Fault status code, 6 bits. */
  fsc?: number;
}

export type AbortKind = 'data' | 'instruction';

/** Encodes named ISS fields; throws SEAWALL_KVM_ISS_INVALID for a combination the architecture forbids. */
export function encodeIss(fields: IssFields, kind: AbortKind): number {
  const fsc = fields.fsc ?? FSC_SEA;
  if (!Number.isInteger(fsc) || fsc < 0 || fsc > 0x3f) {
    throw new KvmError('SEAWALL_KVM_ISS_INVALID', `fsc must be a 6-bit value, got ${fsc}`, { field: 'fsc' });
  }
  let iss = fsc;
  if (fields.set !== undefined) {
    if (fsc !== FSC_SEA) {
      throw new KvmError(
        'SEAWALL_KVM_ISS_INVALID',
        `set is meaningful only with fsc 0x10 (synchronous external abort), not 0x${fsc.toString(16)}`,
        { field: 'set' },
      );
    }
    const setBits = SEVERITY_TO_SET[fields.set];
    if (setBits === undefined) {
      throw new KvmError('SEAWALL_KVM_ISS_INVALID', `set must be uer, uc or ueo, got ${String(fields.set)}`, {
        field: 'set',
      });
    }
    iss |= setBits << 11;
  }
  if (fields.wnr) {
    if (kind !== 'data') {
      throw new KvmError('SEAWALL_KVM_ISS_INVALID', 'wnr exists only in data aborts', { field: 'wnr' });
    }
    iss |= 1 << 6;
  }
  if (fields.fnv) iss |= 1 << 10;
  if (fields.ea) iss |= 1 << 9;
  if (fields.cm) iss |= 1 << 8;
  return iss;
}

/** Checks a raw ISS: an integer within bits [24:0]. */
export function validateRawIss(iss: number | bigint): number {
  const n = typeof iss === 'bigint' ? iss : Number.isInteger(iss) ? BigInt(iss) : -1n;
  if (n < 0n || n > BigInt(ISS_MASK)) {
    throw new KvmError(
      'SEAWALL_KVM_ISS_INVALID',
      `ISS must fit in ESR bits [24:0] (0..0x${ISS_MASK.toString(16)}), got ${typeof iss === 'bigint' ? `0x${iss.toString(16)}` : String(iss)}`,
      { field: 'iss' },
    );
  }
  return Number(n);
}

/**
 * The INJECT verdicts a plugin checks against the HELLO it sent before their image reaches
 * `KVM_SET_VCPU_EVENTS` (docs/protocol.md §5.1, INJECT): one set for every client, so that the
 * reference client's unit test (test/vmm/verdict-checks.test.ts) and the conformance suite, which
 * runs the C library and the Rust crate too, hold all three to the same rules.
 */
import { CAP } from '../../../protocol/index.js';

/** A host with the merged (mainline) layout: SEA_TO_USER, INJECT_EXT_DABT, RAS, NISV_TO_USER (0x33). */
export const MERGED_CAPS = CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.NISV_TO_USER;
/** The same host declaring the posted IABT/ESR layout too (0x37). */
export const POSTED_CAPS = MERGED_CAPS | CAP.EXT_ABT_ESR;

export interface ImageVector {
  name: string;
  /** The image's non-zero bytes, by offset; every other byte of the 64 is zero. */
  bytes: Readonly<Record<number, number>>;
  /** The capabilities the HELLO declared. */
  caps: number;
  /** The event the INJECT answers. */
  event: 'sea' | 'sigbus';
  /** Null when the image is applied as sent; else what the reference client's refusal names. */
  refused: RegExp | null;
}

/** The 64-byte image of `bytes`. */
export function image(bytes: Readonly<Record<number, number>>): Uint8Array {
  const out = new Uint8Array(64);
  for (const [at, b] of Object.entries(bytes)) out[Number(at)] = b;
  return out;
}

const refused = (name: string, bytes: ImageVector['bytes'], caps: number, why: RegExp): ImageVector => ({
  name,
  bytes,
  caps,
  event: 'sea',
  refused: why,
});
const applied = (name: string, bytes: ImageVector['bytes'], caps: number): ImageVector => ({
  name,
  bytes,
  caps,
  event: 'sea',
  refused: null,
});

export const IMAGE_VECTORS: readonly ImageVector[] = [
  refused(
    'a pad byte (posted ext_iabt_pending) under the merged ABI',
    { 2: 1, 3: 1 },
    MERGED_CAPS,
    /byte 3 .*merged/,
  ),
  refused(
    'a reserved byte (posted ext_abt_esr) under the merged ABI',
    { 2: 1, 16: 0x10 },
    MERGED_CAPS,
    /byte 16 .*merged/,
  ),
  refused('a reserved byte', { 2: 1, 40: 7 }, MERGED_CAPS, /byte 40/),
  refused(
    'the last reserved byte of the posted layout',
    { 2: 1, 63: 1 },
    POSTED_CAPS,
    /byte 63 .*ext-abt-esr/,
  ),
  refused('a pad byte of the posted layout', { 2: 1, 6: 1 }, POSTED_CAPS, /byte 6 .*ext-abt-esr/),
  refused(
    'the first reserved byte of the posted layout',
    { 2: 1, 24: 1 },
    POSTED_CAPS,
    /byte 24 .*ext-abt-esr/,
  ),
  refused('a flag byte other than 1', { 2: 2 }, MERGED_CAPS, /byte 2 /),
  refused('a posted flag byte other than 1', { 3: 1, 4: 2 }, POSTED_CAPS, /byte 4 /),
  refused('serror_pending', { 0: 1, 2: 1 }, MERGED_CAPS, /SError/),
  refused('serror_has_esr', { 1: 1, 2: 1 }, MERGED_CAPS, /SError/),
  refused('serror_esr alone', { 2: 1, 8: 1 }, MERGED_CAPS, /SError/),
  refused('neither abort', {}, MERGED_CAPS, /neither/),
  refused('both aborts', { 2: 1, 3: 1 }, POSTED_CAPS, /both/),
  refused('ext_abt_esr without ext_abt_has_esr', { 3: 1, 16: 0x10 }, POSTED_CAPS, /without ext_abt_has_esr/),
  refused('ext_abt_has_esr without RAS', { 3: 1, 4: 1 }, POSTED_CAPS & ~CAP.RAS, /FEAT_RAS/),
  refused('ext_abt_esr outside ISS', { 3: 1, 4: 1, 19: 0x02 }, POSTED_CAPS, /outside ISS/),
  refused('an FSC KVM would change', { 2: 1, 4: 1, 16: 0x21 }, POSTED_CAPS, /FSC 0x21/),
  refused('INJECT without INJECT_EXT_DABT', { 2: 1 }, MERGED_CAPS & ~CAP.INJECT_EXT_DABT, /INJECT_EXT_DABT/),
  { name: 'INJECT after a SIGBUS', bytes: { 2: 1 }, caps: MERGED_CAPS, event: 'sigbus', refused: /SIGBUS/ },
  applied('the merged data abort', { 2: 1 }, MERGED_CAPS),
  applied('the merged data abort to a posted host', { 2: 1 }, POSTED_CAPS),
  applied('a posted instruction abort with its ISS', { 3: 1, 4: 1, 16: 0x10, 17: 0x06 }, POSTED_CAPS),
  applied("a posted ISS with FSC 0, which asks for KVM's", { 2: 1, 4: 1, 17: 0x06 }, POSTED_CAPS),
  applied('ISS bit 24 set, with an FSC KVM keeps', { 2: 1, 4: 1, 16: 0x18, 19: 0x01 }, POSTED_CAPS),
];

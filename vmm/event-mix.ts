/**
 * Synthetic exits for the simulator: a weighted mix of SEA, NISV, MMIO-abort and SIGBUS events with
 * the shapes a conforming kernel produces (reference §2, §7), from a seeded generator so a run can
 * be repeated.
 */
import { KVM_EXIT_ARM_SEA_FLAG_GPA_VALID } from '../kvm/index.js';
import { BUS_MCEERR_AO, BUS_MCEERR_AR } from '../protocol/index.js';
import { VmmError } from './errors.js';
import type { ExitReport } from './plugin-client.js';

export type MixKind = 'sea' | 'nisv' | 'mmio' | 'sigbus';
export type EventMix = Readonly<Record<MixKind, number>>;

export const DEFAULT_MIX: EventMix = { sea: 100, nisv: 0, mmio: 0, sigbus: 0 };

/** ESR SET severities a simulated SEA carries, by weight (Arm ARM: UER 0b00, UC 0b10, UEO 0b11). */
export type SeverityKind = 'uer' | 'ueo' | 'uc';
export type SeverityMix = Readonly<Record<SeverityKind, number>>;
export const DEFAULT_SEVERITY: SeverityMix = { uer: 100, ueo: 0, uc: 0 };
const SET_BITS: Readonly<Record<SeverityKind, bigint>> = { uer: 0b00n, uc: 0b10n, ueo: 0b11n };

function weights<K extends string>(text: string, keys: readonly K[], what: string): Record<K, number> {
  const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    if (!k || !keys.includes(k as K) || v === undefined || !/^\d+$/.test(v)) {
      throw new VmmError(
        'SEAWALL_VMM_INVALID_OPTION',
        `${what}: '${part}' is not kind=weight with kind one of ${keys.join(', ')}`,
      );
    }
    out[k as K] = Number(v);
  }
  if (Object.values<number>(out).every((w) => w === 0))
    throw new VmmError('SEAWALL_VMM_INVALID_OPTION', `${what}: every weight is 0`);
  return out;
}

/** Parses `uer=80,uc=10,ueo=10`. */
export function parseSeverityMix(text: string): SeverityMix {
  return weights(text, ['uer', 'ueo', 'uc'] as const, '--severity');
}

/** What a generator draws from besides the kind mix. */
export interface GeneratorOptions {
  severity?: SeverityMix;
  /**
   * The guest pages this VM's errors fall on. A short list makes the VM hit the same pages again
   * (repeat-page rules); without one, pages are drawn from 4 GiB and repeats are rare.
   */
  pages?: readonly bigint[];
}

/** `n` distinct guest pages for VM `vm`, the same on every run. */
export function pagePool(vm: number, n: number): bigint[] {
  const random = rng(0x5ea11 + vm * 7);
  const pages = new Set<bigint>();
  while (pages.size < n) pages.add(BigInt(Math.floor(random() * 0x100000)) << 12n);
  return [...pages];
}

/** Parses `sea=90,nisv=5,mmio=3,sigbus=2`. */
export function parseMix(text: string): EventMix {
  return weights(text, ['sea', 'nisv', 'mmio', 'sigbus'] as const, '--mix');
}

/** mulberry32: small, fast, seedable; quality is ample for picking event shapes. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DABT_LOW_IL = (0x24n << 26n) | (1n << 25n);

export class EventGenerator {
  readonly #random: () => number;
  readonly #cumulative: [MixKind, number][];
  readonly #total: number;
  readonly #severities: [SeverityKind, number][] = [];
  readonly #severityTotal: number;
  readonly #pages: readonly bigint[] | null;

  constructor(mix: EventMix, seed: number, options: GeneratorOptions = {}) {
    this.#random = rng(seed);
    this.#pages = options.pages && options.pages.length > 0 ? options.pages : null;
    let sum = 0;
    for (const [k, w] of Object.entries(options.severity ?? DEFAULT_SEVERITY) as [SeverityKind, number][]) {
      if (w <= 0) continue;
      sum += w;
      this.#severities.push([k, sum]);
    }
    this.#severityTotal = sum;
    let acc = 0;
    this.#cumulative = [];
    for (const [k, w] of Object.entries(mix) as [MixKind, number][]) {
      if (w <= 0) continue;
      acc += w;
      this.#cumulative.push([k, acc]);
    }
    this.#total = acc;
  }

  /** A guest page: one of the VM's pool, or any in the first 4 GiB of guest memory. */
  #page(): bigint {
    const r = this.#random();
    if (this.#pages) return this.#pages[Math.floor(r * this.#pages.length)] as bigint;
    return BigInt(Math.floor(r * 0x100000)) << 12n;
  }

  #set(): bigint {
    // A single severity draws nothing, so runs without --severity repeat exactly as before.
    if (this.#severities.length === 1)
      return SET_BITS[(this.#severities[0] as [SeverityKind, number])[0]] << 11n;
    const r = this.#random() * this.#severityTotal;
    const kind = (this.#severities.find(([, c]) => r < c) ?? this.#severities[0])?.[0] ?? 'uer';
    return SET_BITS[kind] << 11n;
  }

  next(vcpu: number): ExitReport {
    const r = this.#random() * this.#total;
    const kind = (this.#cumulative.find(([, c]) => r < c) ?? this.#cumulative[0])?.[0] ?? 'sea';
    switch (kind) {
      case 'sea': {
        const fnv = this.#random() < 0.25;
        const gpa = this.#page();
        const esr =
          DABT_LOW_IL | 0x10n | this.#set() | (fnv ? 1n << 10n : 0n) | (this.#random() < 0.3 ? 1n << 6n : 0n);
        return {
          type: 'sea',
          vcpu,
          kvmFlags: KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
          esr,
          gva: fnv ? 0n : 0xffff_8000_0000_0000n | gpa | 0xbadn,
          gpa,
        };
      }
      case 'nisv':
        return { type: 'nisv', vcpu, esrIss: 0n, faultIpa: 0x8000000n };
      case 'mmio':
        return { type: 'mmio', vcpu, physAddr: 0x8000000n, data: new Uint8Array(8), len: 8, isWrite: false };
      case 'sigbus': {
        // AR is taken on the vCPU thread that touched the page; AO belongs to no vCPU (§4.4).
        const ar = this.#random() < 0.8;
        return {
          type: 'sigbus',
          vcpu: ar ? vcpu : null,
          siCode: ar ? BUS_MCEERR_AR : BUS_MCEERR_AO,
          addrLsb: 12,
          gpa: this.#page(),
        };
      }
    }
  }
}

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

/** Parses `sea=90,nisv=5,mmio=3,sigbus=2`. */
export function parseMix(text: string): EventMix {
  const mix: Record<MixKind, number> = { sea: 0, nisv: 0, mmio: 0, sigbus: 0 };
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    if (!k || !(k in mix) || v === undefined || !/^\d+$/.test(v)) {
      throw new VmmError(
        'SEAWALL_VMM_INVALID_OPTION',
        `--mix: '${part}' is not kind=weight with kind one of sea, nisv, mmio, sigbus`,
      );
    }
    mix[k as MixKind] = Number(v);
  }
  if (Object.values(mix).every((w) => w === 0))
    throw new VmmError('SEAWALL_VMM_INVALID_OPTION', '--mix: every weight is 0');
  return mix;
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

  constructor(mix: EventMix, seed: number) {
    this.#random = rng(seed);
    let acc = 0;
    this.#cumulative = [];
    for (const [k, w] of Object.entries(mix) as [MixKind, number][]) {
      if (w <= 0) continue;
      acc += w;
      this.#cumulative.push([k, acc]);
    }
    this.#total = acc;
  }

  /** A guest page in the first 4 GiB of guest memory. */
  #page(): bigint {
    return BigInt(Math.floor(this.#random() * 0x100000)) << 12n;
  }

  next(vcpu: number): ExitReport {
    const r = this.#random() * this.#total;
    const kind = (this.#cumulative.find(([, c]) => r < c) ?? this.#cumulative[0])?.[0] ?? 'sea';
    switch (kind) {
      case 'sea': {
        const fnv = this.#random() < 0.25;
        const gpa = this.#page();
        const esr = DABT_LOW_IL | 0x10n | (fnv ? 1n << 10n : 0n) | (this.#random() < 0.3 ? 1n << 6n : 0n);
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
      case 'sigbus':
        return {
          type: 'sigbus',
          vcpu,
          siCode: this.#random() < 0.8 ? BUS_MCEERR_AR : BUS_MCEERR_AO,
          addrLsb: 12,
          gpa: this.#page(),
        };
    }
  }
}

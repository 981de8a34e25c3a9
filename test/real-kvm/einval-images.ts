/**
 * The kvm_vcpu_events images the encoder refuses for a merged-ABI host, laid out byte for byte as
 * a careless plugin would send them: the lane hands each straight to the real kernel's
 * KVM_SET_VCPU_EVENTS (not through the daemon), right after an MMIO exit, and expects EINVAL.
 * A host without RAS ("serror_has_esr needs RAS") cannot be shown here: QEMU's `max` CPU has RAS.
 */
import { EMPTY_EVENTS, layoutVcpuEvents, type VcpuEventsFields } from '../../kvm/index.js';

export interface EinvalCase {
  name: string;
  /** The fields the encoder is asked for (and refuses on a merged host). */
  fields: VcpuEventsFields;
  image: Uint8Array;
}

function posted(f: Partial<VcpuEventsFields>): VcpuEventsFields {
  return { ...EMPTY_EVENTS, ...f };
}

export function einvalCases(): EinvalCase[] {
  const cases: { name: string; fields: VcpuEventsFields; abi: 'merged' | 'ext-abt-esr' }[] = [
    { name: 'iabt-pending', fields: posted({ extIabtPending: true }), abi: 'ext-abt-esr' },
    {
      name: 'both-abort-kinds',
      fields: posted({ extDabtPending: true, extIabtPending: true }),
      abi: 'ext-abt-esr',
    },
    {
      name: 'abt-has-esr',
      fields: posted({ extDabtPending: true, extAbtHasEsr: true, extAbtEsr: 0x610n }),
      abi: 'ext-abt-esr',
    },
    {
      name: 'abt-esr-outside-iss',
      fields: posted({ extIabtPending: true, extAbtHasEsr: true, extAbtEsr: 1n << 30n }),
      abi: 'ext-abt-esr',
    },
    {
      name: 'serror-esr-outside-iss',
      fields: posted({ serrorPending: true, serrorHasEsr: true, serrorEsr: 1n << 30n }),
      abi: 'merged',
    },
  ];
  return cases.map((c) => ({ name: c.name, fields: c.fields, image: layoutVcpuEvents(c.fields, c.abi) }));
}

/** Raw images no field set produces: pad and reserved bytes the kernel checks (byte 7, byte 63). */
export function einvalRawCases(): { name: string; image: Uint8Array }[] {
  const pad = new Uint8Array(64);
  pad[2] = 1;
  pad[7] = 1;
  const reserved = new Uint8Array(64);
  reserved[2] = 1;
  reserved[63] = 1;
  return [
    { name: 'pad-byte-7', image: pad },
    { name: 'reserved-byte-63', image: reserved },
  ];
}

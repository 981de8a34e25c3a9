/**
 * Generated event rows of a memory-error storm, as the store's insert statements take them:
 * VMs in turn (one session each), each VM's pages visited in a scattered order, 25 events a
 * millisecond. Shared by the store benchmarks (store-rows.ts, retention.ts).
 */
import { type EventParams, hex64 } from '../store/index.js';

const T0 = Date.UTC(2026, 11, 1);
const labels = JSON.stringify({ pool: 'web', zone: 'a' });

/** Event `i` of a storm over `vms` VMs of `pages` pages each. */
export function stormRow(i: number, bootId: string, vms: number, pages: number): EventParams {
  const vm = i % vms;
  const ord = Math.floor(i / vms) + 1;
  return {
    boot_id: bootId,
    session_id: vm + 1,
    seq: ord,
    time_ms: T0 + Math.floor(i / 25),
    vm: `vm-${vm}`,
    labels,
    vcpu: i % 8,
    kind: 'sea',
    esr: hex64(0x92000410n),
    ec: 0x24,
    fsc: 0x10,
    fsc_class: 'sea',
    abort: 'data',
    severity: 'uer',
    sigbus_code: null,
    gva: hex64(0xffff800012345000n),
    gpa: hex64(0x40000000n + BigInt((i * 7919) % pages) * 0x1000n),
    replay: 0,
    fallback_action: null,
    action: 'inject',
    rule: 'default',
    policy_version: 'f44a8df5c141',
    downgrade: null,
    verdict_action: 1,
    verdict_flags: 0,
    latency_ns: 12_345,
    non_conforming: null,
    kernel_mismatch: null,
    plugin_time_ns: hex64(BigInt(T0) * 1_000_000n + BigInt(i) * 1000n),
    ord,
    id: i + 1,
  };
}

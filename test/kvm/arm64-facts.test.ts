/**
 * What real arm64 kernels showed (docs/real-kvm.md) and kvm/ now states: injection is allowed after
 * KVM_EXIT_ARM_LDST64B (42), a vCPU mapping is two pages (8192 with 4 KiB pages), and the page size
 * is asked of the host.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defaultVcpuMmapSize,
  EMPTY_EVENTS,
  encodeVcpuEvents,
  hostPageSize,
  INJECTABLE_EXITS,
  KVM_EXIT_ARM_LDST64B,
  KVM_RUN_DEFAULT_MMAP_SIZE,
} from '../../kvm/index.js';

test('ext_dabt_pending is allowed after KVM_EXIT_ARM_LDST64B, and still refused after other exits', () => {
  assert.equal(KVM_EXIT_ARM_LDST64B, 42);
  assert.ok(INJECTABLE_EXITS.has(42));
  const dabt = { ...EMPTY_EVENTS, extDabtPending: true };
  const host = { abi: 'merged' as const, ras: true };
  assert.equal(encodeVcpuEvents(dabt, host, KVM_EXIT_ARM_LDST64B).toString('hex').slice(0, 8), '00000100');
  assert.throws(() => encodeVcpuEvents(dabt, host, 10), /ARM_LDST64B exit, not exit 10/);
});

test('the default vCPU mapping is two pages: 8192 on 4 KiB pages, more on larger ones', () => {
  assert.equal(KVM_RUN_DEFAULT_MMAP_SIZE, 8192);
  assert.equal(defaultVcpuMmapSize(4096), 8192);
  assert.equal(defaultVcpuMmapSize(16384), 32768);
  assert.equal(defaultVcpuMmapSize(65536), 131072);
  const page = hostPageSize();
  assert.ok(page >= 4096 && (page & (page - 1)) === 0, `page size ${page}`);
  assert.equal(defaultVcpuMmapSize(), 2 * page);
});

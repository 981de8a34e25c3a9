import assert from 'node:assert/strict';
import { closeSync, writeSync } from 'node:fs';
import { test } from 'node:test';
import {
  createStandInVcpuFd,
  KVM_RUN_DEFAULT_MMAP_SIZE,
  KVM_RUN_SIZE_ARM64,
  RunPage,
  seaExit,
  writeExit,
} from '../../kvm/index.js';

test('a read-only mapping of a stand-in vCPU fd sees exits written through the fd', () => {
  const fd = createStandInVcpuFd('vcpu0', KVM_RUN_DEFAULT_MMAP_SIZE);
  const page = RunPage.map(fd, KVM_RUN_DEFAULT_MMAP_SIZE);
  try {
    const image = new Uint8Array(KVM_RUN_SIZE_ARM64);
    const exit = seaExit(0x92000410n, 0n, 0x8000_0000n);
    writeExit(image, exit);
    writeSync(fd, image, 0, image.length, 0); // another writer (the stand-in "kernel")
    assert.deepEqual(page.readExit(), exit);
  } finally {
    page.unmap();
    closeSync(fd);
  }
  assert.equal(page.mapped, false);
  assert.throws(() => page.bytes, /unmapped/);
  page.unmap(); // idempotent
});

test('mmap of a bad fd is a typed syscall error', () => {
  assert.throws(
    () => RunPage.map(987654, 4096),
    (err: unknown) => (err as { code?: string }).code === 'SEAWALL_KVM_SYSCALL',
  );
});

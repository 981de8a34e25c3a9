/**
 * What VcpuPages maps an fd at (attach/vcpu-pages.ts mappingLength), by what the fd is. A real KVM
 * vCPU fd is only had where /dev/kvm is: the index check is tested here on the classification
 * (kvm/vcpu-fd.ts classifyVcpuFd reads `kvm-vcpu:N` from the fd's link), the rest end to end in
 * attach-server.test.ts with sealed stand-ins.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mappingLength } from '../../attach/vcpu-pages.js';
import { KVM_RUN_DEFAULT_MMAP_SIZE, kvmVcpuIndexOfLink } from '../../kvm/index.js';

const HOST = { mmapSize: 3 * KVM_RUN_DEFAULT_MMAP_SIZE, allowStandIns: false };

test('a KVM vCPU fd is mapped only as the vCPU it is', () => {
  const index = kvmVcpuIndexOfLink('anon_inode:kvm-vcpu:3');
  assert.equal(index, 3);
  const fd = { kind: 'kvm-vcpu', index: 3 } as const;
  assert.equal(mappingLength(fd, 3, HOST), HOST.mmapSize);
  // vCPU 3's fd passed for any other index (one fd for every index of a large vcpu_count) is refused.
  for (const vcpu of [0, 2, 4, 4095]) assert.equal(mappingLength(fd, vcpu, HOST), 0, `as vCPU ${vcpu}`);
});

test('a stand-in only where allowed, sealed, and at least a kvm_run page, whatever the index', () => {
  const sealed = { kind: 'memfd', size: KVM_RUN_DEFAULT_MMAP_SIZE, sealed: true } as const;
  assert.equal(mappingLength(sealed, 0, HOST), 0, 'stand-ins not allowed');
  const standIns = { ...HOST, allowStandIns: true };
  assert.equal(mappingLength(sealed, 7, standIns), KVM_RUN_DEFAULT_MMAP_SIZE);
  assert.equal(mappingLength({ ...sealed, sealed: false }, 0, standIns), 0, 'unsealed');
  assert.equal(mappingLength({ ...sealed, size: KVM_RUN_DEFAULT_MMAP_SIZE - 1 }, 0, standIns), 0, 'short');
  assert.equal(
    mappingLength({ ...sealed, size: 1 << 20 }, 0, standIns),
    HOST.mmapSize,
    'at most the host size',
  );
  assert.equal(mappingLength({ kind: 'other', what: '/dev/null' }, 0, standIns), 0);
});

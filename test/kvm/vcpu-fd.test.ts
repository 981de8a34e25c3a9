import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import {
  classifyVcpuFd,
  createSealedStandInVcpuFd,
  createStandInVcpuFd,
  KVM_RUN_DEFAULT_MMAP_SIZE,
  kvmVcpuIndexOfLink,
} from '../../kvm/index.js';

test("a vCPU fd's /proc link names its index; nothing else is taken for one", () => {
  // What the kernels of the real-KVM lane name a vCPU fd (docs/real-kvm.md).
  assert.equal(kvmVcpuIndexOfLink('anon_inode:kvm-vcpu:0'), 0);
  assert.equal(kvmVcpuIndexOfLink('anon_inode:kvm-vcpu:511'), 511);
  for (const other of [
    'anon_inode:kvm-vm',
    'anon_inode:kvm-vcpu:',
    'anon_inode:kvm-vcpu:1 ',
    'anon_inode:kvm-vcpu:-1',
    'anon_inode:kvm-vcpu-stats:0',
    '/tmp/anon_inode:kvm-vcpu:0',
    '/memfd:anon_inode:kvm-vcpu:0 (deleted)',
  ])
    assert.equal(kvmVcpuIndexOfLink(other), null, other);
});

test('classifyVcpuFd: memfd stand-ins by their seals, anything else by its link', (t) => {
  const sealed = createSealedStandInVcpuFd('sealed', KVM_RUN_DEFAULT_MMAP_SIZE);
  const unsealed = createStandInVcpuFd('unsealed', 4096);
  const file = openSync('/dev/null', 'r');
  t.after(() => {
    for (const fd of [sealed, unsealed, file]) closeSync(fd);
  });
  assert.deepEqual(classifyVcpuFd(sealed), { kind: 'memfd', size: KVM_RUN_DEFAULT_MMAP_SIZE, sealed: true });
  assert.deepEqual(classifyVcpuFd(unsealed), { kind: 'memfd', size: 4096, sealed: false });
  assert.deepEqual(classifyVcpuFd(file), { kind: 'other', what: '/dev/null' });
  const closed = openSync('/dev/null', 'r');
  closeSync(closed);
  const gone = classifyVcpuFd(closed);
  assert.equal(gone.kind, 'other');
  assert.match(gone.kind === 'other' ? gone.what : '', /^unreadable fd \(ENOENT\)$/);
});

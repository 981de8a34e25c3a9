import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { probeHost } from '../../kvm/index.js';

test('a host without the device gets an answer, not an exception', () => {
  const r = probeHost({ device: '/nonexistent/kvm' });
  assert.equal(r.available, false);
  if (r.available) return;
  assert.equal(r.reason, 'absent');
  assert.match(r.message, /\/nonexistent\/kvm is absent/);
});

test('a device that is not KVM is reported as such (real ioctl, ENOTTY)', () => {
  const r = probeHost({ device: '/dev/null' });
  assert.equal(r.available, false);
  if (r.available) return;
  assert.equal(r.reason, 'not-kvm');
  assert.match(r.message, /ENOTTY/);
});

test('the real /dev/kvm, when this machine has one, answers API version 12 and a mmap size', (t) => {
  if (!existsSync('/dev/kvm')) {
    t.diagnostic('no /dev/kvm here: the absent path is covered above');
    assert.equal(probeHost().available, false);
    return;
  }
  const r = probeHost();
  if (!r.available) {
    assert.equal(r.reason, 'permission', r.message);
    return;
  }
  assert.equal(r.apiVersion, 12);
  assert.ok(r.vcpuMmapSize >= 4096);
  if (r.arch !== 'arm64') assert.equal(r.caps.seaToUser, false, 'arm64 capabilities are absent elsewhere');
});

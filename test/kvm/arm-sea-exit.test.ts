/**
 * The lane VMM's KVM_EXIT_ARM_SEA path (vmm/arm64/sea.c), which no kernel reaches under the lane's
 * emulation (docs/real-kvm.md): compiled for this host and fed kvm_run images that kvm/'s
 * `writeExit` builds, it must read the record kvm/'s `decodeExit` reads, at the same offsets, and
 * give an emulated abort FAR_EL1 = gva only when the exit's own ESR has FnV clear
 * (docs/protocol.md §5.1).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeExit, KVM_RUN_EXIT_RECORD_END, type KvmExit, seaExit, writeExit } from '../../kvm/index.js';
import { requireTool } from '../helpers/tools.js';
import { WAIT_MS } from '../helpers/wait.js';

const VMM = new URL('../../vmm/', import.meta.url).pathname;
const FNV = 1n << 10n;

interface Case {
  name: string;
  exit: KvmExit;
  far: bigint;
}

const CASES: Case[] = [
  {
    // The kernel's sea_to_user selftest: a load from GVA 0x81234BAD, FnV clear, GPA valid.
    name: 'selftest load, FnV clear',
    exit: seaExit(0x92000010n, 0x81234badn, 0x40234000n),
    far: 0x81234badn,
  },
  { name: 'FnV set: the kernel leaves gva 0', exit: seaExit(0x92000410n, 0x81234badn, 0x40234000n), far: 0n },
  {
    // A record no conforming kernel writes: gva non-zero beside FnV. FnV decides.
    name: 'FnV set with a stray gva',
    exit: {
      ...(seaExit(0x92000410n, 0n, null) as Extract<KvmExit, { reason: 'arm-sea' }>),
      gva: 0xdeadbeefn,
    },
    far: 0n,
  },
  {
    name: 'no GPA, FnV clear',
    exit: seaExit(0x92000050n, 0xffff800012345678n, null),
    far: 0xffff800012345678n,
  },
];

test('sea.c reads kvm_run.arm_sea as decodeExit does, and gives FAR_EL1 = gva only with FnV clear', (t) => {
  const gcc = requireTool(t, 'gcc', 'gcc');
  if (!gcc) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sea-exit-'));
  try {
    const bin = join(dir, 'sea_exit_check');
    execFileSync(
      gcc,
      [
        '-std=gnu11',
        '-Wall',
        '-Wextra',
        '-Werror',
        `-I${VMM}arm64`,
        `-I${VMM}c`,
        '-o',
        bin,
        new URL('./fixtures/sea_exit_check.c', import.meta.url).pathname,
        `${VMM}arm64/sea.c`,
      ],
      { timeout: WAIT_MS },
    );
    const images = CASES.map((c) => {
      // Every byte outside the record is noise: the reader must take only its own offsets.
      const buf = new Uint8Array(KVM_RUN_EXIT_RECORD_END).fill(0xa5);
      writeExit(buf, c.exit);
      return Buffer.from(buf).toString('hex');
    });
    const lines = execFileSync(bin, images, { encoding: 'utf8', timeout: WAIT_MS }).trim().split('\n');
    assert.equal(lines.length, CASES.length);
    for (const [i, c] of CASES.entries()) {
      const [vcpu, flags, esr, gva, gpa, far] = (lines[i] as string)
        .split(' ')
        .map((x) => BigInt(`0x${x}`)) as [bigint, bigint, bigint, bigint, bigint, bigint];
      const d = decodeExit(Buffer.from(images[i] as string, 'hex'));
      assert.equal(d.reason, 'arm-sea');
      if (d.reason !== 'arm-sea') return;
      assert.deepEqual([vcpu, flags, esr, gva, gpa], [BigInt(i), d.flags, d.esr, d.gva, d.gpa], c.name);
      assert.equal(far, c.far, `${c.name}: FAR_EL1`);
      assert.equal(far, (esr & FNV) === 0n ? gva : 0n, `${c.name}: the §5.1 rule`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

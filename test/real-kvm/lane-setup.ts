/**
 * What the lane test needs before a boot: the tools (a missing one fails under CI, skips
 * elsewhere), the private apt view refreshed once per run, the VMM built once, and per kernel an
 * initramfs. Downloads are cached under $SEAWALL_REAL_KVM_CACHE, else $XDG_CACHE_HOME/seawall-real-kvm (~/.cache without it).
 */
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { AptView, machineMirror } from '../../scripts/real-kvm/apt-view.js';
import { buildInitramfs, buildVmm } from '../../scripts/real-kvm/initramfs.js';
import { type KernelLine, LANE_SUITES, type LaneKernel, laneKernel } from '../../scripts/real-kvm/kernels.js';
import { requireTool } from '../helpers/tools.js';
import { einvalCases, einvalRawCases } from './einval-images.js';

const TOOLS: [string, string][] = [
  ['qemu-system-aarch64', 'qemu-system-arm'],
  ['aarch64-linux-gnu-gcc', 'gcc-aarch64-linux-gnu'],
  ['cpio', 'cpio'],
  ['apt-get', 'apt'],
  ['dpkg-deb', 'dpkg'],
];

export function cacheDir(): string {
  const dir =
    process.env.SEAWALL_REAL_KVM_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'seawall-real-kvm');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The tools' paths, or null when the test was skipped for want of one. */
export function laneTools(t: TestContext): { qemu: string } | null {
  let qemu: string | null = null;
  for (const [tool, pkg] of TOOLS) {
    const path = requireTool(t, tool, pkg);
    if (!path) return null;
    if (tool === 'qemu-system-aarch64') qemu = path;
  }
  return qemu ? { qemu } : null;
}

let view: Promise<AptView> | null = null;
let vmm: Promise<string> | null = null;

export interface PreparedKernel {
  kernel: LaneKernel;
  initrd: string;
}

/** Resolves and fetches the kernel of `line` and packs its initramfs into `dir`. */
export async function prepareKernel(line: KernelLine, dir: string): Promise<PreparedKernel> {
  const cache = cacheDir();
  view ??= (async () => {
    const v = new AptView(join(cache, 'apt'), machineMirror(), LANE_SUITES);
    await v.update();
    return v;
  })();
  vmm ??= buildVmm(join(cache, 'seawall-lane-vmm'));
  const kernel = await laneKernel(await view, line);
  const einval = [...einvalCases(), ...einvalRawCases()].map((c) => ({ name: c.name, image: c.image }));
  const initrd = buildInitramfs(join(dir, 'initrd.cpio'), {
    vmm: await vmm,
    modules: kernel.modules,
    einval,
  });
  return { kernel, initrd };
}

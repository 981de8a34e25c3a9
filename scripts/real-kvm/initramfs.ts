/**
 * The lane's initramfs: the VMM (vmm/arm64, built static for arm64) as /init, the kernel's virtio
 * modules and their load order, and the kvm_vcpu_events images the VMM sends straight to the
 * kernel. A cpio "newc" archive, as the kernel's initramfs loader reads it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RealKvmSetupError } from './apt-view.js';

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL('../../vmm/arm64/build.sh', import.meta.url));

/** Compiles the lane VMM with Debian's aarch64 cross compiler into `out`. */
export async function buildVmm(out: string): Promise<string> {
  try {
    await run('sh', [BUILD, out], { timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new RealKvmSetupError(`building the lane VMM: ${e.stderr || e.message}`);
  }
  return out;
}

export interface InitramfsInput {
  vmm: string;
  modules: readonly string[];
  /** name → 64-byte image, written to /einval.txt. */
  einval: ReadonlyArray<{ name: string; image: Uint8Array }>;
}

/** Writes the archive to `out` (staging in `out`.d) and returns its path. */
export function buildInitramfs(out: string, input: InitramfsInput): string {
  const stage = `${out}.d`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'modules'), { recursive: true });
  copyFileSync(input.vmm, join(stage, 'init'));
  chmodSync(join(stage, 'init'), 0o755);
  const list = input.modules.map((m) => {
    copyFileSync(m, join(stage, 'modules', basename(m)));
    return `/modules/${basename(m)}`;
  });
  writeFileSync(join(stage, 'modules.list'), list.map((l) => `${l}\n`).join(''));
  writeFileSync(
    join(stage, 'einval.txt'),
    input.einval.map((e) => `${e.name} ${Buffer.from(e.image).toString('hex')}\n`).join(''),
  );
  const r = spawnSync(
    'sh',
    ['-c', 'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > "$2"', 'sh', stage, out],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new RealKvmSetupError(`cpio: ${r.stderr}`);
  return out;
}

/**
 * qemu-system-aarch64 in software emulation with EL2, so the arm64 kernel inside has a working
 * /dev/kvm (flags as measured on the lane's host, docs/real-kvm.md): `-nic none` because QEMU 7.2
 * otherwise looks for a romfile it does not ship; `pauth-impdef=on` because the architected
 * pointer-authentication algorithm makes emulated boot several times slower.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
// The lane runs only under the test runner: its processes are owned as every test's are, each in a
// process group killed when the test file ends, even on a timeout (test/helpers/processes.ts).
import { spawnOwned } from '../../test/helpers/processes.js';

export interface SerialPort {
  /** The port's name inside the guest (/sys/class/virtio-ports/*\/name). */
  name: string;
  /** The host socket QEMU connects the port to (QEMU is the client). */
  path: string;
}

export interface QemuOptions {
  kernel: string;
  initrd: string;
  ports: readonly SerialPort[];
  memoryMiB?: number;
}

export interface RunningQemu {
  proc: ChildProcess;
  /** The guest console (ttyAMA0), line by line. */
  console: string[];
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

export function qemuArgs(o: QemuOptions): string[] {
  const ports = o.ports.flatMap((p, i) => [
    '-chardev',
    `socket,id=port${i},path=${p.path}`,
    '-device',
    `virtserialport,chardev=port${i},name=${p.name}`,
  ]);
  return [
    '-M',
    'virt,virtualization=on,gic-version=3',
    '-cpu',
    'max,pauth-impdef=on',
    '-smp',
    '1',
    '-m',
    String(o.memoryMiB ?? 1024),
    '-nographic',
    '-no-reboot',
    '-nic',
    'none',
    '-kernel',
    o.kernel,
    '-initrd',
    o.initrd,
    '-append',
    'console=ttyAMA0 rdinit=/init panic=-1 loglevel=4',
    '-device',
    'virtio-serial-pci',
    ...ports,
  ];
}

export function startQemu(binary: string, o: QemuOptions): RunningQemu {
  const proc = spawnOwned(binary, qemuArgs(o), { stdio: ['pipe', 'pipe', 'pipe'] });
  const console: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => console.push(l));
  createInterface({ input: proc.stderr! }).on('line', (l) => console.push(`qemu: ${l}`));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    console,
    exited,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

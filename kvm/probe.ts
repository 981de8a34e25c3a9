/**
 * What this host's KVM offers, asked of /dev/kvm (the only fd another process may query freely,
 * reference §5). A host without /dev/kvm gets an answer that says so, never an exception.
 */
import { closeSync, constants as fsc, openSync } from 'node:fs';
import {
  KVM_API_VERSION,
  KVM_CAP_ARM_INJECT_EXT_DABT,
  KVM_CAP_ARM_NISV_TO_USER,
  KVM_CAP_ARM_SEA_TO_USER,
} from './constants.js';
import { isKvmError } from './errors.js';
import { KVM_CHECK_EXTENSION, KVM_GET_API_VERSION, KVM_GET_VCPU_MMAP_SIZE } from './ioc.js';
import { ioctlValue } from './ioctl.js';

export interface ProbeOptions {
  /** Device path; tests point it elsewhere. */
  device?: string;
  /** The posted IABT/ESR capability's number on this host's kernel, if configured (no stable number exists). */
  extAbtEsrCap?: number;
}

export type HostProbe =
  | {
      available: false;
      device: string;
      reason: 'absent' | 'permission' | 'not-kvm' | 'error';
      message: string;
    }
  | {
      available: true;
      device: string;
      apiVersion: number;
      vcpuMmapSize: number;
      caps: {
        seaToUser: boolean;
        injectExtDabt: boolean;
        nisvToUser: boolean;
        /** null when no capability number was configured. */
        extAbtEsr: boolean | null;
      };
      arch: string;
    };

export function probeHost(opts: ProbeOptions = {}): HostProbe {
  const device = opts.device ?? '/dev/kvm';
  let fd: number;
  try {
    fd = openSync(device, fsc.O_RDWR); // libuv opens with O_CLOEXEC;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return {
        available: false,
        device,
        reason: 'absent',
        message: `${device} is absent: this host has no KVM (no kvm module, or not a hypervisor host)`,
      };
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return {
        available: false,
        device,
        reason: 'permission',
        message: `${device} exists but this user may not open it (add the user to the kvm group)`,
      };
    }
    return {
      available: false,
      device,
      reason: 'error',
      message: `cannot open ${device}: ${(err as Error).message}`,
    };
  }
  try {
    const apiVersion = ioctlValue(fd, KVM_GET_API_VERSION, 'KVM_GET_API_VERSION', 'system');
    if (apiVersion !== KVM_API_VERSION) {
      return {
        available: false,
        device,
        reason: 'not-kvm',
        message: `${device} reports KVM API ${apiVersion}, expected 12`,
      };
    }
    const check = (cap: number): boolean =>
      ioctlValue(fd, KVM_CHECK_EXTENSION, 'KVM_CHECK_EXTENSION', 'system', cap) > 0;
    return {
      available: true,
      device,
      apiVersion,
      vcpuMmapSize: ioctlValue(fd, KVM_GET_VCPU_MMAP_SIZE, 'KVM_GET_VCPU_MMAP_SIZE', 'system'),
      caps: {
        seaToUser: check(KVM_CAP_ARM_SEA_TO_USER),
        injectExtDabt: check(KVM_CAP_ARM_INJECT_EXT_DABT),
        nisvToUser: check(KVM_CAP_ARM_NISV_TO_USER),
        extAbtEsr: opts.extAbtEsrCap === undefined ? null : check(opts.extAbtEsrCap),
      },
      arch: process.arch,
    };
  } catch (err) {
    if (isKvmError(err)) {
      // ENOTTY: the device is not KVM (e.g. a test points at /dev/null).
      return {
        available: false,
        device,
        reason: 'not-kvm',
        message: `${device} did not answer KVM ioctls: ${err.message}`,
      };
    }
    throw err;
  } finally {
    closeSync(fd);
  }
}

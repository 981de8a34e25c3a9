/** What the daemon knows about one plugin connection once its HELLO is accepted. */
import type { HostCapabilities, VmIdentity } from '../policies/decision.js';
import { CAP, type HelloMsg } from '../protocol/index.js';

export interface SessionInfo {
  id: bigint;
  vm: VmIdentity;
  vmmPid: number;
  vcpuCount: number;
  /** HELLO capability bits as sent. */
  caps: number;
  extAbtEsrCap: number;
  host: HostCapabilities;
  /** KVM can inject at all (INJECT_EXT_DABT); without it only emulation remains. */
  kvmInject: boolean;
  peer: { pid: number; uid: number; gid: number };
  openedAtMs: number;
}

export function hostFromCaps(caps: number): HostCapabilities {
  return {
    abi: caps & CAP.EXT_ABT_ESR ? 'ext-abt-esr' : 'merged',
    ras: (caps & CAP.RAS) !== 0,
    emulateAbort: (caps & CAP.EMULATE_ABORT) !== 0,
  };
}

export function sessionInfo(
  id: bigint,
  hello: HelloMsg,
  peer: SessionInfo['peer'],
  nowMs: number,
): SessionInfo {
  return {
    id,
    vm: { id: hello.vmId, labels: Object.freeze({ ...hello.labels }) },
    vmmPid: hello.vmmPid,
    vcpuCount: hello.vcpuCount,
    caps: hello.caps,
    extAbtEsrCap: hello.extAbtEsrCap,
    host: hostFromCaps(hello.caps),
    kvmInject: (hello.caps & CAP.INJECT_EXT_DABT) !== 0,
    peer,
    openedAtMs: nowMs,
  };
}

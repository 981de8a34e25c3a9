/** HELLO → the SessionInfo every sink sees: the plugin's declared capabilities made into meaning. */
import type { SessionInfo } from '../events/index.js';
import type { Pidfd } from '../kvm/index.js';
import type { HostCapabilities } from '../policies/index.js';
import { CAP, type HelloMsg } from '../protocol/index.js';

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
  conn?: { takePidfd(): Pidfd | null; peerHolds(): boolean; endHandedOn(): void },
): SessionInfo {
  return {
    // The pidfd taken at accept (then owned by kill enforcement), and a look at the connection.
    ...(conn
      ? {
          peerPidfd: conn.takePidfd(),
          connectionHeld: () => conn.peerHolds(),
          endHandedOn: () => conn.endHandedOn(),
        }
      : {}),
    id,
    minor: hello.minor ?? 0,
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

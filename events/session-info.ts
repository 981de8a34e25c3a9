/** What the daemon knows about one plugin connection once its HELLO is accepted. */
import type { Pidfd } from '../kvm/index.js';
import type { HostCapabilities, VmIdentity } from '../policies/index.js';

export interface SessionInfo {
  id: bigint;
  /** The protocol's minor version this session speaks (0: 1.0, 1: 1.1). */
  minor: number;
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
  /**
   * The connected process, taken at accept (kvm/peer-process.ts): what a kill signals. null when
   * none could be had safely; absent where the session was not made by the plugin server.
   */
  peerPidfd?: Pidfd | null;
  /**
   * Whether some process still holds the plugin's end of the connection (the kernel has not hung
   * it up), read now, before the daemon may have read its end of file; false once the session is
   * closing, unless the daemon ended it because the connecting process had exited while another
   * held it (then true for good). The connecting process may have handed it on (a fork,
   * SCM_RIGHTS) and exited. Absent where the session was not made by the plugin server.
   */
  connectionHeld?: () => boolean;
  /**
   * Ends the session (GOODBYE NORMAL) when the connecting process has exited and another holds the
   * connection, so that the holder connects again as itself; nothing otherwise. Asked by a kill
   * that finds the process gone. Absent where the session was not made by the plugin server.
   */
  endHandedOn?: () => void;
  openedAtMs: number;
}

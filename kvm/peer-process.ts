/**
 * The peer process of a plugin connection as one handle, taken at accept: its credentials and a
 * pidfd naming it. A kill verdict must reach the process that connected, never an innocent one
 * that inherited its PID; a PID read at accept and opened at HELLO could be reused in between
 * (the peer hands its socket to a child and exits).
 *
 * Where the kernel has SO_PEERPIDFD (6.5+) the pidfd comes from connect(2) itself and is exact.
 * Elsewhere pidfd_open(2) of the PID from SO_PEERCRED, verified: the process it names must run
 * with the peer's uid — SO_PEERCRED's is the effective uid at connect(2), so any of the process's
 * real, effective, saved and filesystem uids may be it (a setuid VMM, or one that changed its uids
 * since) — and must still be alive after the check: a PID reused by another user's process is
 * refused. A reuse by a process of the same uid between connect and accept stays
 * possible there; docs/security.md says so.
 */
import { readFileSync } from 'node:fs';
import { type PeerCred, peerCred, peerPidfd } from './peer-cred.js';
import { Pidfd } from './pidfd.js';

export interface PeerProcess {
  cred: PeerCred;
  /** null when no pidfd could be had safely; kills of this peer then fail instead of guessing. */
  pidfd: Pidfd | null;
  /** How the pidfd was obtained, or why not. */
  how: 'so_peerpidfd' | 'pidfd_open_verified' | 'unverified' | 'unavailable';
}

/** The real, effective, saved and filesystem uids of `pid` from /proc, or null when unreadable. */
function uidsOf(pid: number): number[] | null {
  try {
    const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m.slice(1).map(Number) : null;
  } catch {
    return null;
  }
}

/** Credentials and pidfd of the peer of the connected AF_UNIX socket `fd`. Throws KvmSyscallError. */
export function peerProcess(fd: number): PeerProcess {
  const cred = peerCred(fd);
  const exact = peerPidfd(fd);
  if (exact !== null) return { cred, pidfd: Pidfd.adopt(cred.pid, exact), how: 'so_peerpidfd' };
  return verifiedPeer(cred);
}

/**
 * The peer named by `cred` without SO_PEERPIDFD (kernels before 6.5): pidfd_open(2) of its PID,
 * kept only if that process runs with the peer's uid and is alive after the check.
 */
export function verifiedPeer(cred: PeerCred): PeerProcess {
  let pidfd: Pidfd;
  try {
    pidfd = Pidfd.open(cred.pid);
  } catch {
    return { cred, pidfd: null, how: 'unavailable' };
  }
  // Read /proc while the pidfd is held, then check the pidfd still names a live process: if so,
  // /proc/<pid> was that process (a PID is not reused while its process lives).
  const uids = uidsOf(cred.pid);
  let alive = false;
  try {
    alive = pidfd.signal(0) === 'sent';
  } catch {
    alive = false; // EPERM: not ours to signal, so not ours to kill either
  }
  if (uids?.includes(cred.uid) && alive) return { cred, pidfd, how: 'pidfd_open_verified' };
  pidfd.close();
  return { cred, pidfd: null, how: 'unverified' };
}

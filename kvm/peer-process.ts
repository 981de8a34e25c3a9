/**
 * The peer process of a plugin connection as one handle, taken at accept: its credentials and a
 * pidfd naming it. A kill verdict must reach the process that connected, never an innocent one
 * that inherited its PID; a PID read at accept and opened at HELLO could be reused in between
 * (the peer hands its socket to a child and exits).
 *
 * Where the kernel has SO_PEERPIDFD (6.5+) the pidfd comes from connect(2) itself and is exact.
 * Elsewhere pidfd_open(2) of the PID from SO_PEERCRED, verified: the process it names must run
 * with the peer's uid, and must still be alive after the check — a PID reused by another user's
 * process is refused. A reuse by a process of the same uid between connect and accept stays
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

/** The real uid of `pid` from /proc, or null when it cannot be read. */
function realUid(pid: number): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Credentials and pidfd of the peer of the connected AF_UNIX socket `fd`. Throws KvmSyscallError. */
export function peerProcess(fd: number): PeerProcess {
  const cred = peerCred(fd);
  const exact = peerPidfd(fd);
  if (exact !== null) return { cred, pidfd: Pidfd.adopt(cred.pid, exact), how: 'so_peerpidfd' };
  let pidfd: Pidfd;
  try {
    pidfd = Pidfd.open(cred.pid);
  } catch {
    return { cred, pidfd: null, how: 'unavailable' };
  }
  // Read /proc while the pidfd is held, then check the pidfd still names a live process: if so,
  // /proc/<pid> was that process (a PID is not reused while its process lives).
  const uid = realUid(cred.pid);
  let alive = false;
  try {
    alive = pidfd.signal(0) === 'sent';
  } catch {
    alive = false; // EPERM: not ours to signal, so not ours to kill either
  }
  if (uid === cred.uid && alive) return { cred, pidfd, how: 'pidfd_open_verified' };
  pidfd.close();
  return { cred, pidfd: null, how: 'unverified' };
}

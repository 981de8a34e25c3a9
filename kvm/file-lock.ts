/**
 * flock(2) on a file the process keeps open: the lock is the kernel's, tied to the open file, and
 * goes with the process however it ends (kill -9 included), so no stale lock is ever left behind.
 */
import { KvmError } from './errors.js';
import { ERRNO, errnoName, lastErrno, libc } from './libc.js';

const LOCK_EX = 2;
const LOCK_NB = 4;

/** Takes an exclusive lock on `fd` without waiting: false when another open file holds one. */
export function tryLockExclusive(fd: number): boolean {
  if (libc().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = lastErrno();
  if (errno === ERRNO.EWOULDBLOCK || errno === ERRNO.EAGAIN) return false;
  throw new KvmError('SEAWALL_KVM_SYSCALL', `flock(${fd}, LOCK_EX|LOCK_NB) failed: ${errnoName(errno)}`, {
    syscall: 'flock',
    errno: errnoName(errno),
  });
}

/**
 * The process's ambient capabilities (capabilities(7)). A unit's `AmbientCapabilities=CAP_KILL`
 * gives a daemon that runs as its own user CAP_KILL through its ambient set, and execve(2) hands
 * that set on: every program the daemon starts (a migration hook, and whatever the hook runs)
 * could signal any process on the host. Clearing it leaves the caller's own permitted and effective
 * sets as they are. Capabilities are per thread: call it on the thread that starts programs (Node's
 * main thread), before it starts any.
 */
import { KvmSyscallError } from './ioctl.js';
import { lastErrno, libc } from './libc.js';

const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const EINVAL = 22;

/**
 * Empties the calling thread's ambient set. A kernel without ambient capabilities (before 4.3)
 * answers EINVAL and has none to hand on; any other failure is a KvmSyscallError.
 */
export function clearAmbientCapabilities(): void {
  if (libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) === 0) return;
  const errno = lastErrno();
  if (errno !== EINVAL) throw new KvmSyscallError('prctl(PR_CAP_AMBIENT_CLEAR_ALL)', errno);
}

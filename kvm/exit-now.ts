/**
 * _exit(2) through libc: the process ends at once with `code`, without exit(3)'s wait for threads.
 * For a daemon that is stopped and durable but has a thread of libuv's pool held in a system call
 * that will not return (a journald that takes no entries): process.exit() would wait for that
 * thread, and a SIGKILL of its own makes systemd record the stop as a failure (Result: signal).
 */
import { KvmError } from './errors.js';
import { libc } from './libc.js';

export function exitNow(code: number): never {
  libc().exitNow(code);
  // _exit does not return.
  throw new KvmError('SEAWALL_KVM_UNAVAILABLE', '_exit returned');
}

/**
 * _exit(2) through libc: the process ends at once with `code`, without exit(3)'s wait for threads.
 * For a daemon that is stopped and durable but has a thread of libuv's pool held in a system call
 * that will not return (a journald that takes no entries): process.exit() would wait for that
 * thread, and a SIGKILL of its own makes systemd record the stop as a failure (Result: signal).
 */
import koffi from 'koffi';
import { KvmError } from './errors.js';
import { libc } from './libc.js';

let exit: ((code: number) => void) | null = null;

export function exitNow(code: number): never {
  if (exit === null) {
    libc(); // the same library, the same failure when it is missing
    exit = koffi.load('libc.so.6').func('void _exit(int status)') as (code: number) => void;
  }
  exit(code);
  // _exit does not return.
  throw new KvmError('SEAWALL_KVM_UNAVAILABLE', '_exit returned');
}

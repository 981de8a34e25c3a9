/** flock(2), bound through koffi, for test/helpers/file-slots.ts and its test. */
import koffi from 'koffi';

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** 0 on success, -1 on failure (with LOCK_NB: the lock is held elsewhere). */
export const flock = koffi.load('libc.so.6').func('int flock(int fd, int operation)') as (
  fd: number,
  op: number,
) => number;

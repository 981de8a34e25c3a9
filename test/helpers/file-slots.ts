/**
 * Preloaded (--import) into every test file's process by scripts/run-tests.mjs, which runs two
 * files at a time. A file that holds the daemon to a latency bound (listed in SEAWALL_TEST_ALONE)
 * must not share the machine with another file's daemons, QEMU guests or compilers: their load
 * would be charged to the daemon it measures. So every other file holds a shared lock for its
 * whole life, and a file listed as alone takes that lock exclusively, waiting for the file beside
 * it to end; while it waits or runs, a file the runner starts next waits at a gate, so the alone
 * file is not starved by the stream of new files.
 *
 * The locks are flock(2) on two files in a directory the runner made (SEAWALL_TEST_LOCKS); the
 * kernel releases them when a process exits, however it exits. Outside the runner (a file run on
 * its own, or the runner's own process) this does nothing.
 */
import { closeSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Longer than any one file may run (the runner's per-test limit is 10 minutes). */
const WAIT_MS = 20 * 60_000;

const dir = process.env.SEAWALL_TEST_LOCKS;
const file = process.argv[1];
if (dir && file && process.env.NODE_TEST_CONTEXT) {
  // Loaded here only: the runner's own process and files run alone need no FFI.
  const { flock, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN } = await import('./flock.js');
  const gate = openSync(join(dir, 'gate'), 'a');
  const machine = openSync(join(dir, 'machine'), 'a');
  const deadline = Date.now() + WAIT_MS;
  const take = async (fd: number, op: number, what: string): Promise<void> => {
    while (flock(fd, op | LOCK_NB) !== 0) {
      if (Date.now() > deadline) {
        throw new Error(`${file}: the ${what} lock was not free within ${WAIT_MS / 60_000} minutes`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const alone = (process.env.SEAWALL_TEST_ALONE ?? '')
    .split(',')
    .filter(Boolean)
    .some((f) => resolve(f) === resolve(file));
  if (alone) {
    // Held until this process exits: the gate keeps new files out, the machine lock waits for
    // the files already running.
    await take(gate, LOCK_EX, 'gate');
    await take(machine, LOCK_EX, 'machine');
  } else {
    await take(gate, LOCK_SH, 'gate');
    await take(machine, LOCK_SH, 'machine');
    flock(gate, LOCK_UN);
    closeSync(gate);
  }
}

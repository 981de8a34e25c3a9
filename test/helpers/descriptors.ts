/**
 * The process's open-file limit in tests: descriptors taken and released, and the soft
 * RLIMIT_NOFILE read and set (lowered with prlimit(1), so that taking every descriptor is quick).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { WAIT_MS } from './wait.js';

/** Descriptors on /dev/null, held until released. */
export class Descriptors {
  readonly #fds: number[] = [];

  /** Takes `n` descriptors. */
  take(n: number): void {
    for (let i = 0; i < n; i++) this.#fds.push(openSync('/dev/null', 'r'));
  }

  /** Takes every free descriptor, until the kernel refuses one. */
  takeAll(): void {
    try {
      for (;;) this.#fds.push(openSync('/dev/null', 'r'));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'EMFILE');
    }
  }

  /** Takes descriptors, lowest first, up to and including `last`, which must be free. */
  takeUpTo(last: number): void {
    for (;;) {
      const fd = openSync('/dev/null', 'r');
      this.#fds.push(fd);
      if (fd === last) return;
      assert.ok(fd < last, `descriptor ${last} was not free`);
    }
  }

  release(): void {
    for (const fd of this.#fds.splice(0)) closeSync(fd);
  }

  /** Frees the last descriptor taken: the next one opened gets it. */
  releaseOne(): void {
    const fd = this.#fds.pop();
    if (fd !== undefined) closeSync(fd);
  }
}

/** The process's soft RLIMIT_NOFILE, as /proc shows it (read while a descriptor is free). */
export function softLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s{2,}/)[1]);
}

/** Sets the process's soft RLIMIT_NOFILE; starting prlimit(1) takes a few free descriptors. */
export function setSoftLimit(prlimit: string, n: number): void {
  const r = spawnSync(prlimit, ['--pid', String(process.pid), `--nofile=${n}:`], {
    encoding: 'utf8',
    timeout: WAIT_MS,
  });
  assert.equal(r.status, 0, `prlimit: ${r.error ?? r.stderr}`);
}

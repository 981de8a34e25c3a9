/**
 * The one source of randomness in tests: a seed per run, printed where a failure shows it, and
 * replayed by running again with SEAWALL_TEST_SEED=<seed>. Property tests (fast-check) take it as
 * their global seed — fast-check's failure message repeats it with the counterexample's path —
 * and tests that choose moments at random (kill -9 in the durability tests) draw from
 * `randomFor`, which prints it as a diagnostic of the test.
 */
import type { TestContext } from 'node:test';
import fc from 'fast-check';
import { rng } from '../../vmm/event-mix.js';

function initialSeed(): number {
  const given = process.env.SEAWALL_TEST_SEED;
  if (given === undefined || given === '') return (Date.now() ^ (process.pid << 16)) >>> 0;
  const seed = Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`SEAWALL_TEST_SEED=${given} is not an integer`);
  return seed >>> 0;
}

/** This run's seed. */
export const SEED = initialSeed();

fc.configureGlobal({ seed: SEED });

/**
 * A seeded generator of numbers in [0, 1) for `t`, which reports the seed as its diagnostic (seen
 * beside the result, failed or not) with how to replay it.
 */
export function randomFor(t: TestContext, what: string): () => number {
  t.diagnostic(`${what}: seed ${SEED} (SEAWALL_TEST_SEED=${SEED} replays it)`);
  return rng(SEED);
}

/**
 * Which event an APPLIED result is for (store/awaiting-applied.ts): each session keeps the entries
 * of its last `capFor(vCPUs)` events, a reused seq names the newer event, and a taken entry is
 * gone. The rings grow to their bound and find a seq through a hash table of their own; here they
 * are checked against a plain model of the same rule over long random runs, with seqs that collide
 * and reuse often. The peer picks the seqs: seqs chosen to share one home under a fixed hash
 * must not pile up in one cluster of the table, whatever the ring's keys.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AwaitingApplied, capFor, type RingKeys, randomKeys } from '../../store/awaiting-applied.js';

/** The rule, written as plainly as possible: a session's last `cap` events, the newest with a seq wins. */
class Model {
  readonly #sessions = new Map<
    bigint,
    { cap: number; events: { seq: number; ord: number; id: number; live: boolean }[] }
  >();

  note(session: bigint, vcpus: number, seq: number, ord: number, id: number): void {
    let s = this.#sessions.get(session);
    if (s === undefined) {
      s = { cap: capFor(vcpus), events: [] };
      this.#sessions.set(session, s);
    }
    for (const e of s.events) if (e.seq === seq) e.live = false;
    s.events.push({ seq, ord, id, live: true });
    if (s.events.length > s.cap) s.events.shift();
  }

  take(session: bigint, seq: number): readonly [number, number] | undefined {
    const e = this.#sessions.get(session)?.events.find((x) => x.live && x.seq === seq);
    if (e === undefined) return undefined;
    e.live = false;
    return [e.ord, e.id];
  }

  forget(session: bigint): void {
    this.#sessions.delete(session);
  }
}

/** A small deterministic generator (xorshift32), so a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

test("an APPLIED finds the newest event with its seq among the session's last capFor(vCPUs), once", () => {
  const a = new AwaitingApplied();
  // vCPUs 8: 64 entries. Seq 5 is used twice; the APPLIED is for the newer event.
  a.note(1n, 8, 5, 1, 101);
  a.note(1n, 8, 5, 2, 102);
  assert.deepEqual(a.take(1n, 5), [2, 102]);
  assert.equal(a.take(1n, 5), undefined, 'taken once; the older event with seq 5 was replaced');
  // Another session's seqs are its own.
  a.note(2n, 8, 7, 1, 201);
  a.note(1n, 8, 7, 3, 103);
  assert.deepEqual(a.take(2n, 7), [1, 201]);
  assert.deepEqual(a.take(1n, 7), [3, 103]);
  // An event is kept for the session's next 63 events, not for the 64th.
  a.note(1n, 8, 1000, 4, 104);
  for (let i = 1; i <= 63; i++) a.note(1n, 8, 1000 + i, 4 + i, 104 + i);
  assert.deepEqual(a.take(1n, 1000), [4, 104]);
  a.note(1n, 8, 2000, 100, 200);
  for (let i = 1; i <= 64; i++) a.note(1n, 8, 2000 + i, 100 + i, 200 + i);
  assert.equal(a.take(1n, 2000), undefined, 'dropped: 64 newer events');
  assert.deepEqual(a.take(1n, 2064), [164, 264]);
  // A forgotten session awaits nothing, and a new one under its id starts empty.
  a.note(3n, 8, 9, 1, 301);
  a.forget(3n);
  assert.equal(a.take(3n, 9), undefined);
  a.note(3n, 8, 10, 1, 302);
  assert.equal(a.take(3n, 9), undefined);
  assert.deepEqual(a.take(3n, 10), [1, 302]);
});

test('long random runs agree with the plain model: reused and colliding seqs, takes, sessions forgotten', () => {
  for (const [seed, seqRange, vcpus] of [
    [1, 8, 8], // seqs reused all the time
    [2, 100, 8], // about the bound
    [3, 4096, 40], // 80 entries, a 256-place table
    [4, 2 ** 32, 8], // any u32, halves of the hash's input space
    [5, 300, 1],
    [6, 3000, 1000], // 2,000 entries: the ring grows 64, 128 … 1,024, 2,000, then wraps
  ] as const) {
    const next = random(seed);
    const a = new AwaitingApplied();
    const m = new Model();
    let id = 0;
    let found = 0;
    // Seqs noted lately: most takes name one of them, as APPLIED results do.
    const recent: number[] = [];
    for (let step = 0; step < 60_000; step++) {
      const session = BigInt(1 + next(3));
      const op = next(100);
      // Seqs in a range, or anywhere in u32 (both halves of the hash's input).
      const seq =
        op >= 60 && op < 90 && recent.length > 0
          ? (recent[next(recent.length)] as number)
          : seqRange === 2 ** 32
            ? next(0x10000) * 0x10000 + next(0x10000)
            : 1 + next(seqRange);
      if (op < 60) {
        id++;
        a.note(session, vcpus, seq, id * 3, id);
        m.note(session, vcpus, seq, id * 3, id);
        recent.push(seq);
        if (recent.length > 100) recent.shift();
      } else if (op < 99) {
        const expected = m.take(session, seq);
        assert.deepEqual(a.take(session, seq), expected, `seed ${seed}, step ${step}: take ${seq}`);
        if (expected !== undefined) found++;
      } else {
        a.forget(session);
        m.forget(session);
      }
    }
    assert.ok(found > 2_000, `seed ${seed}: ${found} takes found their event`);
    // Whatever still awaits is found, and only that.
    for (const session of [1n, 2n, 3n])
      for (const seq of [...recent, ...Array.from({ length: Math.min(seqRange, 5000) }, (_, i) => i)])
        assert.deepEqual(a.take(session, seq), m.take(session, seq), `seed ${seed}: at the end, ${seq}`);
  }
});

/**
 * Seqs that all had home 0 under the fixed multiply-shift hash the rings once used
 * (`imul(seq, 0x9e3779b1) >>> shift`): seq = t·K⁻¹ mod 2³², t = 1, 2, … — a peer could send them and
 * make every note and APPLIED of its session scan one cluster of up to 8,192 entries.
 */
function oldHomeZero(count: number, from = 1): number[] {
  const K = 0x9e3779b1n;
  const M = 1n << 32n;
  // K⁻¹ mod 2³² by Newton's iteration: each step doubles the correct low bits.
  let inv = K;
  for (let i = 0; i < 5; i++) inv = (inv * (2n - K * inv)) % M;
  inv = (inv + M) % M;
  assert.equal((K * inv) % M, 1n);
  return Array.from({ length: count }, (_, i) => Number((BigInt(from + i) * inv) % M));
}

test('seqs chosen to collide under a fixed hash spread over the table: every run stays short', () => {
  const attack = oldHomeZero(8192 + 1024);
  const absent = oldHomeZero(1024, 1 << 20);
  const keySets: (() => RingKeys)[] = [
    () => [0, 0x9e3779b1], // the old multiplier itself, no salt
    () => [0x12345678, 0x2545f491],
    () => [0xdeadbeef, 0x00000001], // the weakest multiplier
    randomKeys,
  ];
  for (const keys of keySets) {
    const a = new AwaitingApplied(keys);
    // vCPUs 4096: 8,192 entries in a 16,384-place table, the largest ring a session may have.
    for (let i = 0; i < 8192; i++) a.note(1n, 4096, attack[i] as number, i + 1, i + 1);
    const full = a.longestRun(1n);
    assert.ok(
      full < 200,
      `${keys()}: a full ring's longest run is ${full} places (8,192 under the old hash)`,
    );
    // The ring wraps: each note drops the oldest entry.
    for (let i = 8192; i < attack.length; i++) a.note(1n, 4096, attack[i] as number, i + 1, i + 1);
    const wrapped = a.longestRun(1n);
    assert.ok(wrapped < 200, `${keys()}: after wrapping, the longest run is ${wrapped} places`);
    // APPLIED results: for seqs no event awaits, then for dropped, kept and newest events.
    for (const seq of absent) assert.equal(a.take(1n, seq), undefined);
    assert.equal(a.take(1n, attack[1023] as number), undefined, 'dropped: 8,192 newer events');
    assert.deepEqual(a.take(1n, attack[1024] as number), [1025, 1025]);
    assert.deepEqual(a.take(1n, attack[9215] as number), [9216, 9216]);
    assert.equal(a.take(1n, attack[9215] as number), undefined, 'taken once');
  }
});

test('sequential seqs stay spread too, and each ring draws keys of its own', () => {
  const a = new AwaitingApplied();
  for (let seq = 1; seq <= 8192; seq++) a.note(1n, 4096, seq, seq, seq);
  assert.ok(a.longestRun(1n) < 200, `longest run ${a.longestRun(1n)}`);
  assert.equal(a.longestRun(2n), 0, 'no ring');
  const drawn = new Set<string>();
  for (let i = 0; i < 8; i++) {
    const [salt, multiplier] = randomKeys();
    assert.equal(multiplier & 1, 1, 'the multiplier is odd: a bijection of u32');
    drawn.add(`${salt}:${multiplier}`);
  }
  assert.equal(drawn.size, 8);
});

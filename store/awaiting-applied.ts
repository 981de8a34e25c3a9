/**
 * Which stored event an APPLIED result is for. The plugin names the event by its seq, which it may
 * reuse once the verdict has arrived. Each event stored with a verdict to come is noted here as
 * seq → (order in the session, row id), per session, until its APPLIED arrives; the APPLIED then
 * updates that one row by its id, with no index on seq to keep up per row.
 *
 * Bounded: a session keeps the entries of its last `capFor(vCPUs)` events, so an APPLIED must come
 * before that many newer events of its session. A 1.1 plugin answers every verdict with an APPLIED
 * before the vCPU runs again, so its entries are taken long before; a 1.0 plugin need not, and its
 * entries would otherwise grow with every event. An APPLIED whose entry was dropped, or that names
 * no event awaiting one, changes nothing.
 *
 * The plugin picks the seqs, so where a seq goes in a ring's hash table must not be something it
 * can work out: each ring hashes with keys of its own, drawn at random (`randomKeys`). With a fixed
 * hash, a peer could choose seqs that all share one home, and every note and APPLIED of its session
 * would scan one cluster of thousands of entries on the event loop.
 *
 * The metrics sink keeps one of its own (row id 0), so that an APPLIED `source` FALLBACK is counted
 * once, and only for an event the daemon answered in that session.
 */
import { randomFillSync } from 'node:crypto';

/** Entries a session keeps: twice its vCPUs (a verdict in flight and one applied but unreported), at least 64. */
export const capFor = (vcpus: number): number => Math.max(64, 2 * vcpus);

/** A ring's hash keys: a value xored into the seq and an odd multiplier. */
export type RingKeys = readonly [salt: number, multiplier: number];

/** Keys from the system's random source, one pair per ring. */
export function randomKeys(): RingKeys {
  const k = randomFillSync(new Uint32Array(2));
  return [k[0] as number, (k[1] as number) | 1];
}

/** An event awaiting its APPLIED: its order in the session and its row's id. */
export type AwaitingEvent = readonly [ord: number, id: number];

/**
 * One session's last `cap` events, in a ring: each slot holds an event's seq (NaN once it awaits
 * nothing: taken, or its seq reused by a newer event), its order and its row id. A note takes the
 * oldest slot, so the entry it overwrites is the one past the bound. A seq's slot is found through
 * `#table`, an open-addressing hash of the awaiting slots (linear probing, at most half full, -1
 * where empty), so nothing is allocated per event. The ring starts at 64 slots and doubles as it
 * fills up to `cap`, so a session of many vCPUs that sends few events holds little. Invariant: the
 * slots in `#table` are exactly those whose seq is not NaN, one entry each.
 */
class SessionRing {
  seqs: Float64Array;
  ords: Float64Array;
  ids: Float64Array;
  #next = 0;
  #table: Int32Array;
  #shift: number;
  readonly #cap: number;
  readonly #salt: number;
  readonly #multiplier: number;

  constructor(cap: number, keys: RingKeys) {
    this.#cap = cap;
    [this.#salt, this.#multiplier] = keys;
    const slots = Math.min(cap, INITIAL_SLOTS);
    this.seqs = new Float64Array(slots).fill(Number.NaN);
    this.ords = new Float64Array(slots);
    this.ids = new Float64Array(slots);
    [this.#table, this.#shift] = tableFor(slots);
  }

  /**
   * The seq's home place: keyed multiply-shift, with the high half folded into the low half
   * before each multiply so that every bit of the seq reaches the top bits the place is taken from.
   */
  #home(seq: number): number {
    let h = (seq ^ this.#salt) | 0;
    h = Math.imul(h ^ (h >>> 16), this.#multiplier);
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    return h >>> this.#shift;
  }

  /** The longest run of taken places in the table: what a find or a note may have to scan. */
  longestRun(): number {
    const table = this.#table;
    // Start after an empty place, so a run that wraps round the end is counted once, whole.
    const start = table.indexOf(-1);
    let longest = 0;
    let run = 0;
    for (let i = 1; i <= table.length; i++) {
      run = table[(start + i) & (table.length - 1)] === -1 ? 0 : run + 1;
      if (run > longest) longest = run;
    }
    return longest;
  }

  /** Where `seq`'s slot is in the table, or -1. */
  find(seq: number): number {
    const table = this.#table;
    const mask = table.length - 1;
    for (let at = this.#home(seq); ; at = (at + 1) & mask) {
      const slot = table[at] as number;
      if (slot === -1 || this.seqs[slot] === seq) return slot === -1 ? -1 : at;
    }
  }

  /** The slot at table position `at`, which awaits nothing from now on. */
  remove(at: number): number {
    const table = this.#table;
    const mask = table.length - 1;
    const removed = table[at] as number;
    this.seqs[removed] = Number.NaN;
    // Backward shift: each entry after the gap that may sit in it moves into it.
    let gap = at;
    for (let next = (at + 1) & mask; table[next] !== -1; next = (next + 1) & mask) {
      const home = this.#home(this.seqs[table[next] as number] as number);
      const stays = gap <= next ? home > gap && home <= next : home > gap || home <= next;
      if (!stays) {
        table[gap] = table[next] as number;
        gap = next;
      }
    }
    table[gap] = -1;
    return removed;
  }

  /** The next slot awaits `seq`. */
  add(seq: number, ord: number, id: number): void {
    const slot = this.#next;
    const dropped = Number.isNaN(this.seqs[slot] as number) ? -1 : this.find(this.seqs[slot] as number);
    if (dropped !== -1) this.remove(dropped);
    const older = this.find(seq);
    if (older !== -1) this.remove(older);
    this.seqs[slot] = seq;
    this.ords[slot] = ord;
    this.ids[slot] = id;
    this.#place(slot);
    this.#next = slot + 1;
    if (this.#next === this.seqs.length) {
      if (this.seqs.length < this.#cap) this.#grow();
      else this.#next = 0;
    }
  }

  /** Every slot is in use and the bound is further: twice the slots (the oldest stay first). */
  #grow(): void {
    const slots = Math.min(this.#cap, 2 * this.seqs.length);
    const seqs = new Float64Array(slots).fill(Number.NaN);
    seqs.set(this.seqs);
    const ords = new Float64Array(slots);
    ords.set(this.ords);
    const ids = new Float64Array(slots);
    ids.set(this.ids);
    this.seqs = seqs;
    this.ords = ords;
    this.ids = ids;
    [this.#table, this.#shift] = tableFor(slots);
    for (let slot = 0; slot < slots; slot++) if (!Number.isNaN(seqs[slot] as number)) this.#place(slot);
  }

  /** Puts an awaiting slot in the table, at the first free place from its seq's home. */
  #place(slot: number): void {
    const table = this.#table;
    const mask = table.length - 1;
    let at = this.#home(this.seqs[slot] as number);
    while (table[at] !== -1) at = (at + 1) & mask;
    table[at] = slot;
  }
}

/** The slots a session's ring starts with. */
const INITIAL_SLOTS = 64;

/** A hash table for `slots` slots, at most half full, and the shift that takes a hash to its places. */
function tableFor(slots: number): [Int32Array, number] {
  const bits = Math.ceil(Math.log2(2 * slots));
  return [new Int32Array(1 << bits).fill(-1), 32 - bits];
}

export class AwaitingApplied {
  readonly #sessions = new Map<bigint, SessionRing>();
  readonly #keys: () => RingKeys;
  /** The session noted last and its ring: a storm's events come a session at a time, so most notes find it here. */
  #lastSession: bigint | null = null;
  #lastRing: SessionRing | null = null;

  /** `keys` gives each new ring its hash keys (tests pass fixed ones). */
  constructor(keys: () => RingKeys = randomKeys) {
    this.#keys = keys;
  }

  /**
   * The event `ord` of `session`, row `id`, awaits an APPLIED under `seq` (a newer event with the
   * seq replaces an older one). `vcpus` sets the session's bound when its first event is noted.
   */
  note(session: bigint, vcpus: number, seq: number, ord: number, id: number): void {
    let ring = session === this.#lastSession ? this.#lastRing : this.#sessions.get(session);
    if (ring === undefined || ring === null) {
      ring = new SessionRing(capFor(vcpus), this.#keys());
      this.#sessions.set(session, ring);
    }
    this.#lastSession = session;
    this.#lastRing = ring;
    ring.add(seq, ord, id);
  }

  /** The event an APPLIED for `seq` is about, forgotten as it is returned. */
  take(session: bigint, seq: number): AwaitingEvent | undefined {
    const ring = this.#sessions.get(session);
    const at = ring?.find(seq) ?? -1;
    if (ring === undefined || at === -1) return undefined;
    const slot = ring.remove(at);
    return [ring.ords[slot] as number, ring.ids[slot] as number];
  }

  /** The longest run of taken places in the session's hash table (0 without a ring): for tests. */
  longestRun(session: bigint): number {
    return this.#sessions.get(session)?.longestRun() ?? 0;
  }

  /** The session ended: no APPLIED can come for its events any more. */
  forget(session: bigint): void {
    this.#sessions.delete(session);
    if (session === this.#lastSession) {
      this.#lastSession = null;
      this.#lastRing = null;
    }
  }
}

/**
 * Which stored event an APPLIED result is for. The plugin names the event by its seq, which it may
 * reuse once the verdict has arrived; the store keys events by their order in the session. Each
 * event stored with a verdict to come is noted here as seq → order, per session, until its APPLIED
 * arrives; the APPLIED then updates that one row through the unique key (boot, session, order),
 * with no index on seq to keep up per row.
 *
 * Bounded: a session keeps at most `capFor(vCPUs)` entries, the oldest dropped first. A 1.1 plugin
 * answers every verdict with an APPLIED, so it has about one entry per vCPU; a 1.0 plugin need not,
 * and its entries would otherwise grow with every event. An APPLIED whose entry was dropped, or
 * that names no event awaiting one, changes nothing.
 */

/** Entries a session keeps: twice its vCPUs (a verdict in flight and one applied but unreported), at least 64. */
export const capFor = (vcpus: number): number => Math.max(64, 2 * vcpus);

export class AwaitingApplied {
  readonly #sessions = new Map<bigint, Map<number, number>>();

  /** The event `ord` of `session` awaits an APPLIED under `seq` (a newer event with the seq replaces an older one). */
  note(session: bigint, vcpus: number, seq: number, ord: number): void {
    let bySeq = this.#sessions.get(session);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.#sessions.set(session, bySeq);
    }
    // Deleted first so that a reused seq moves to the newest end, which eviction keeps longest.
    bySeq.delete(seq);
    bySeq.set(seq, ord);
    if (bySeq.size > capFor(vcpus)) bySeq.delete(bySeq.keys().next().value as number);
  }

  /** The order of the event an APPLIED for `seq` is about, forgotten as it is returned. */
  take(session: bigint, seq: number): number | undefined {
    const bySeq = this.#sessions.get(session);
    const ord = bySeq?.get(seq);
    if (ord !== undefined) bySeq?.delete(seq);
    return ord;
  }

  /** The session ended: no APPLIED can come for its events any more. */
  forget(session: bigint): void {
    this.#sessions.delete(session);
  }
}

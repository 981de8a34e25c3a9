/**
 * Which stored event an APPLIED result is for. The plugin names the event by its seq, which it may
 * reuse once the verdict has arrived. Each event stored with a verdict to come is noted here as
 * seq → (order in the session, row id), per session, until its APPLIED arrives; the APPLIED then
 * updates that one row by its id, with no index on seq to keep up per row.
 *
 * Bounded: a session keeps at most `capFor(vCPUs)` entries, the oldest dropped first. A 1.1 plugin
 * answers every verdict with an APPLIED, so it has about one entry per vCPU; a 1.0 plugin need not,
 * and its entries would otherwise grow with every event. An APPLIED whose entry was dropped, or
 * that names no event awaiting one, changes nothing.
 */

/** Entries a session keeps: twice its vCPUs (a verdict in flight and one applied but unreported), at least 64. */
export const capFor = (vcpus: number): number => Math.max(64, 2 * vcpus);

/** An event awaiting its APPLIED: its order in the session and its row's id. */
export type AwaitingEvent = readonly [ord: number, id: number];

export class AwaitingApplied {
  readonly #sessions = new Map<bigint, Map<number, AwaitingEvent>>();

  /**
   * The event `ord` of `session`, row `id`, awaits an APPLIED under `seq` (a newer event with the
   * seq replaces an older one).
   */
  note(session: bigint, vcpus: number, seq: number, ord: number, id: number): void {
    let bySeq = this.#sessions.get(session);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.#sessions.set(session, bySeq);
    }
    // Deleted first so that a reused seq moves to the newest end, which eviction keeps longest.
    bySeq.delete(seq);
    bySeq.set(seq, [ord, id]);
    if (bySeq.size > capFor(vcpus)) bySeq.delete(bySeq.keys().next().value as number);
  }

  /** The event an APPLIED for `seq` is about, forgotten as it is returned. */
  take(session: bigint, seq: number): AwaitingEvent | undefined {
    const bySeq = this.#sessions.get(session);
    const event = bySeq?.get(seq);
    if (event !== undefined) bySeq?.delete(seq);
    return event;
  }

  /** The session ended: no APPLIED can come for its events any more. */
  forget(session: bigint): void {
    this.#sessions.delete(session);
  }
}

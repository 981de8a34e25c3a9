/**
 * The reference client's fallback-handled events until the daemon has them (docs/protocol.md §9):
 * kept, written as REPLAYs followed by a HEARTBEAT, and forgotten on that HEARTBEAT's echo — or
 * taken out by a late VERDICT, which proves the daemon stored the event. A 1.1 event that timed
 * out on the live connection stays out of the replays on that connection: the daemon still
 * decides it there. A session that the daemon ended with an ERROR before the echo drops the
 * oldest replay it wrote: stored already, or the one refused.
 */
import type { EventMsg } from '../protocol/index.js';

export class ReplayQueue {
  readonly #max: number;
  #kept: EventMsg[] = [];
  /** Seqs of kept events that timed out on the current connection (1.1). */
  readonly #live = new Set<number>();
  /** Replays written but not yet acknowledged by the echo of the HEARTBEAT sent after them. */
  #sent: { nonce: bigint; events: EventMsg[] } | null = null;
  #nonce = 1n;

  constructor(max: number) {
    this.#max = max;
  }

  /** Kept and written-but-unacknowledged events. */
  get size(): number {
    return this.#kept.length + (this.#sent?.events.length ?? 0);
  }

  /**
   * Keeps `event` (already flagged REPLAY); `live` when it timed out on a 1.1 connection that is
   * still up. Returns true when the bound made it drop the oldest kept event.
   */
  keep(event: EventMsg, live: boolean): boolean {
    this.#kept.push(event);
    if (live) this.#live.add(event.seq);
    if (this.#kept.length <= this.#max) return false;
    const dropped = this.#kept.shift();
    if (dropped) this.#live.delete(dropped.seq);
    return true;
  }

  /**
   * Takes out the kept events (not those written and awaiting their echo) for which `refusal` gives
   * a reason, and returns them with it.
   */
  discard(refusal: (m: EventMsg) => string | null): { event: EventMsg; reason: string }[] {
    const out: { event: EventMsg; reason: string }[] = [];
    const kept: EventMsg[] = [];
    for (const event of this.#kept) {
      const reason = refusal(event);
      if (reason === null) kept.push(event);
      else out.push({ event, reason });
    }
    if (out.length === 0) return out;
    this.#kept = kept;
    for (const { event } of out) this.#live.delete(event.seq);
    return out;
  }

  /**
   * The events to write now as REPLAYs, with the nonce of the HEARTBEAT to send after them; null
   * when a batch is still unacknowledged or nothing may go.
   */
  takeBatch(): { nonce: bigint; events: EventMsg[] } | null {
    if (this.#sent) return null;
    const events = this.#kept.filter((m) => !this.#live.has(m.seq));
    if (events.length === 0) return null;
    this.#kept = this.#kept.filter((m) => this.#live.has(m.seq));
    this.#sent = { nonce: this.#nonce++, events };
    return this.#sent;
  }

  /**
   * The echo of HEARTBEAT `nonce`: how many replays it acknowledged (0 when late verdicts took
   * them all out), or null when it is not the echo awaited.
   */
  acknowledged(nonce: bigint): number | null {
    const sent = this.#sent;
    if (!sent || sent.nonce !== nonce) return null;
    this.#sent = null;
    return sent.events.length;
  }

  /**
   * A late VERDICT for `seq`: the event is taken out, kept or awaiting its echo (the daemon finds
   * the latter already stored and skips it). Returns it, or undefined when it is not held — dropped
   * past the bound, or never sent.
   */
  forget(seq: number): EventMsg | undefined {
    this.#live.delete(seq);
    const kept = this.#kept.findIndex((r) => r.seq === seq);
    if (kept >= 0) return this.#kept.splice(kept, 1)[0];
    const sent = this.#sent?.events;
    const i = sent ? sent.findIndex((r) => r.seq === seq) : -1;
    return sent && i >= 0 ? sent.splice(i, 1)[0] : undefined;
  }

  /**
   * The connection is gone: unacknowledged replays, and live ones, go again after the next
   * WELCOME. `refused` when the daemon ended it with an ERROR before the echo: the oldest
   * unacknowledged replay is dropped instead and returned. The daemon stores replays in order and
   * stops at the one it refuses, so that one is either stored already or the refused one
   * (docs/protocol.md §9, point 6). Put back in front of the events kept meanwhile, they may
   * pass the bound: the oldest past it are dropped, and `overflow` says how many.
   */
  disconnected(refused = false): { refused: EventMsg | undefined; overflow: number } {
    this.#live.clear();
    const sent = this.#sent;
    if (!sent) return { refused: undefined, overflow: 0 };
    this.#sent = null;
    const dropped = refused ? sent.events.shift() : undefined;
    this.#kept = [...sent.events, ...this.#kept];
    const overflow = Math.max(0, this.#kept.length - this.#max);
    this.#kept.splice(0, overflow);
    return { refused: dropped, overflow };
  }
}

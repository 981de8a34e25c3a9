/**
 * The migration hooks' wait queue: first come first served, with a count of each peer process's
 * (`session.peer.pid`) entries, which says who a full queue is taken from.
 */

/** Entries per peer pid, and which pid holds the most: who a full table or queue is taken from. */
export class PeerCounts {
  readonly #n = new Map<number, number>();

  get(pid: number): number {
    return this.#n.get(pid) ?? 0;
  }

  add(pid: number): void {
    this.#n.set(pid, this.get(pid) + 1);
  }

  remove(pid: number): void {
    const n = this.get(pid) - 1;
    if (n > 0) this.#n.set(pid, n);
    else this.#n.delete(pid);
  }

  /** The pid holding the most, and how many it holds; [-1, 0] when empty. */
  top(): [pid: number, n: number] {
    let top = -1;
    let most = 0;
    for (const [pid, n] of this.#n) {
      if (n > most) {
        top = pid;
        most = n;
      }
    }
    return [top, most];
  }
}

interface Queued {
  session: { peer: { pid: number } };
}

export class PeerQueue<T extends Queued> {
  readonly #items: T[] = [];
  readonly #byPeer = new PeerCounts();

  get length(): number {
    return this.#items.length;
  }

  push(m: T): void {
    this.#byPeer.add(m.session.peer.pid);
    this.#items.push(m);
  }

  /** Index of the first entry for which `pred` holds, -1 if none. */
  findIndex(pred: (m: T) => boolean): number {
    return this.#items.findIndex(pred);
  }

  /** Takes the entry at `i` out of the queue. */
  take(i: number): T {
    const [m] = this.#items.splice(i, 1) as [T];
    this.#byPeer.remove(m.session.peer.pid);
    return m;
  }

  /**
   * Where a full queue makes room for an entry of peer `pid`: the newest entry of the peer holding
   * the most, when it holds at least two more than `pid` (so the shares even out and never swap
   * back and forth). -1 when none.
   */
  victimFor(pid: number): number {
    const [top, most] = this.#byPeer.top();
    if (most < this.#byPeer.get(pid) + 2) return -1;
    let i = this.#items.length - 1;
    while (i >= 0 && this.#items[i]?.session.peer.pid !== top) i--;
    return i; // -1 when the counts and the queue disagree: never loop on it
  }
}

import type { Socket } from 'node:net';

export interface PeerEndpoint {
  readonly address: string;
  readonly port: number;
}

/** The uid owning a TCP connection's other end on this host, null when none does. */
export type PeerUid = (local: PeerEndpoint, remote: PeerEndpoint) => number | null;

/**
 * Requests one connection may have in progress. Node reads a connection on while its answers wait
 * for a rendering, so requests sent back to back without reading the answers (HTTP pipelining,
 * which Prometheus does not use) would each be held, without bound. Two leave room for a client
 * that sends its next request as the last bytes of an answer go out.
 */
export const MAX_PIPELINED = 2;

interface Connection {
  requests: number;
  /** Who holds it (`uid N`, `local` or `address A`), asked the first time the bound is reached. */
  owner: string | undefined;
}

/**
 * The /metrics server's open connections, oldest first, with the requests in progress on each
 * and, once asked, its owner, within a bound. Any local user can open connections to a loopback
 * port, and none can be told apart by address, so past the bound connections are shared by owner:
 * the uid holding the peer's end (asked of the kernel, only then), for a local peer the kernel
 * cannot name the one owner `local`, and for a peer on another host its address.
 *
 * A newcomer past the bound closes one connection or is closed itself. An owner holding two or
 * more connections past what the newcomer's owner holds gives one up, its oldest idle one, else its
 * oldest even mid-request. Otherwise only an idle connection goes, the oldest among owners holding
 * at least as many as the newcomer's; with none, the newcomer is closed. So a request in progress
 * is closed only to let in an owner holding two fewer: a user holding every slot, idle or
 * re-asking, loses one to each other user that connects, and a scraper's lone connection is never
 * closed mid-request. No rule lets everyone in past the bound: as many owners as slots, each with
 * a request in progress, keep newcomers out until one ends.
 */
export class ScrapeConnections {
  readonly #max: number;
  readonly #peerUid: PeerUid | undefined;
  readonly #open = new Map<Socket, Connection>();
  /** Told once, the first time the kernel cannot be asked: every local peer is then one owner. */
  #onUnknown: ((err: Error) => void) | undefined;

  constructor(max: number, peerUid: PeerUid | undefined, onUnknown?: (err: Error) => void) {
    this.#max = max;
    this.#peerUid = peerUid;
    this.#onUnknown = onUnknown;
  }

  get count(): number {
    return this.#open.size;
  }

  get requestsInProgress(): number {
    let n = 0;
    for (const c of this.#open.values()) n += c.requests;
    return n;
  }

  /** Each open connection's owner (once asked) and requests in progress, oldest first (tests). */
  get states(): Array<{ owner: string | undefined; requests: number }> {
    return [...this.#open.values()].map((c) => ({ owner: c.owner, requests: c.requests }));
  }

  /**
   * Counts a request on `socket` until `res` closes; false, counting nothing, when the connection
   * already has {@link MAX_PIPELINED} in progress: its peer asks again without reading the answers.
   */
  requestOn(socket: Socket, res: { once(event: 'close', f: () => void): unknown }): boolean {
    const c = this.#open.get(socket);
    if (c === undefined) return true;
    if (c.requests >= MAX_PIPELINED) return false;
    c.requests++;
    res.once('close', () => c.requests--);
    return true;
  }

  /** Takes a new connection in, closing it or another one past the bound. */
  admit(socket: Socket): void {
    const connection: Connection = { requests: 0, owner: undefined };
    if (this.#open.size >= this.#max) {
      connection.owner = this.#ownerOf(socket);
      const victim = this.#victimFor(connection.owner);
      if (victim === undefined) {
        socket.destroy();
        return;
      }
      this.#open.delete(victim);
      victim.destroy();
    }
    this.#open.set(socket, connection);
    socket.once('close', () => this.#open.delete(socket));
  }

  /** The connection a newcomer of `owner` closes, or undefined when the newcomer is the one to go. */
  #victimFor(owner: string): Socket | undefined {
    const held = new Map<string, Socket[]>();
    for (const [socket, c] of this.#open) {
      c.owner ??= this.#ownerOf(socket);
      const list = held.get(c.owner);
      if (list === undefined) held.set(c.owner, [socket]);
      else list.push(socket);
    }
    let most: Socket[] = [];
    for (const list of held.values()) if (list.length > most.length) most = list;
    const own = held.get(owner)?.length ?? 0;
    const idle = (s: Socket) => this.#open.get(s)?.requests === 0;
    if (most.length >= own + 2) return most.find(idle) ?? most[0];
    for (const [socket, c] of this.#open) {
      if (c.requests === 0 && (held.get(c.owner as string)?.length ?? 0) >= own) return socket;
    }
    return undefined;
  }

  /** Who holds a connection: its peer's uid when the kernel can tell, else `local` or its address. */
  #ownerOf(socket: Socket): string {
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    if (this.#peerUid !== undefined) {
      try {
        const uid = this.#peerUid(local, remote);
        if (uid !== null) return `uid ${uid}`;
      } catch (err) {
        // The kernel cannot be asked (no sock_diag): as for a peer it cannot name.
        const told = this.#onUnknown;
        this.#onUnknown = undefined;
        told?.(err as Error);
      }
    }
    // A local peer picks its address from all of 127.0.0.0/8: every one the kernel cannot name is
    // one owner.
    return isLoopback(remote.address) ? 'local' : `address ${remote.address}`;
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

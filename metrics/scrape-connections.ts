import type { Socket } from 'node:net';

export interface PeerEndpoint {
  readonly address: string;
  readonly port: number;
}

/** The uid owning a TCP connection's other end on this host, null when none does. */
export type PeerUid = (local: PeerEndpoint, remote: PeerEndpoint) => number | null;

interface Connection {
  requests: number;
  /** Who holds it (`uid N` or `address A`), asked the first time the bound is reached. */
  owner: string | undefined;
}

/**
 * The /metrics server's open connections, oldest first, with the requests in progress on each
 * and, once asked, its owner, within a bound. Any local user can open connections to a loopback
 * port, and none can be told apart by address, so past the bound connections are shared by owner:
 * the peer's uid (asked of the kernel, only then), else its address. A newcomer whose owner holds
 * fewer than the owner holding most closes one of that owner's (the oldest with no request in
 * progress, else its oldest); one whose owner holds most closes that owner's own oldest with no
 * request in progress, or, when every one has a request in progress, is closed itself. So whoever
 * holds fewest always gets in: a user holding every slot, idle or re-asking, loses one to each
 * other user that connects, and Prometheus's scrape is never the one closed for it.
 */
export class ScrapeConnections {
  readonly #max: number;
  readonly #peerUid: PeerUid | undefined;
  readonly #open = new Map<Socket, Connection>();

  constructor(max: number, peerUid: PeerUid | undefined) {
    this.#max = max;
    this.#peerUid = peerUid;
  }

  get count(): number {
    return this.#open.size;
  }

  get requestsInProgress(): number {
    let n = 0;
    for (const c of this.#open.values()) n += c.requests;
    return n;
  }

  /** Counts a request on `socket` until `res` closes. */
  requestOn(socket: Socket, res: { once(event: 'close', f: () => void): unknown }): void {
    const c = this.#open.get(socket);
    if (c === undefined) return;
    c.requests++;
    res.once('close', () => c.requests--);
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
    const idle = (s: Socket) => this.#open.get(s)?.requests === 0;
    const own = held.get(owner) ?? [];
    if (own.length >= most.length) return own.find(idle);
    return most.find(idle) ?? most[0];
  }

  /** Who holds a connection: its peer's uid when the kernel can tell, else its address. */
  #ownerOf(socket: Socket): string {
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    if (this.#peerUid !== undefined) {
      try {
        const uid = this.#peerUid(local, remote);
        if (uid !== null) return `uid ${uid}`;
      } catch {
        // The kernel cannot be asked (no sock_diag): the address, as without a peerUid.
      }
    }
    return `address ${remote.address}`;
  }
}

/**
 * The vCPU attach socket (DESIGN "Architecture facts" 2): a SOCK_SEQPACKET listener where a plugin,
 * after its HELLO, passes each vCPU fd (SCM_RIGHTS) with its session id and vCPU index. A
 * connection is accepted only from the very process that holds the plugin session it names
 * (SO_PEERCRED pid, and where the kernel gives pidfds both processes alive), binds to that one
 * session, and owns what it attached: when it closes, or the session ends, the fds are closed and
 * the pages unmapped — holding them would keep the VM's kernel objects alive. Readiness comes from
 * libuv through koffi (kvm/libc-fd.ts watchReadable): no timers, no threads. The socket itself is
 * attach-listener.ts's.
 */
import type { SessionInfo, Sink } from '../events/index.js';
import {
  ConnectionsByProcess,
  closeFd,
  type FdWatch,
  type Pidfd,
  peerHungUp,
  peerProcess,
  recvWithFds,
  sendWithFds,
  watchReadable,
} from '../kvm/index.js';
import {
  ATTACH_OP,
  ATTACH_STATUS,
  ATTACH_STATUS_NAME,
  type AttachOp,
  CLOSING_STATUSES,
  decodeAttachRequest,
  encodeAttachReply,
} from '../protocol/index.js';
import { AttachListener } from './attach-listener.js';
import { VcpuPages, type VcpuPagesOptions } from './vcpu-pages.js';

export interface AttachServerOptions extends VcpuPagesOptions {
  path: string;
  /** File mode of the socket. */
  mode: number;
  /** Open attach connections; past it a new connection is closed at once and counted. */
  maxConnections: number;
  /** A connection that has attached nothing within this time is closed. */
  idleMs: number;
  /** Log hook: attach refusals and connection-level problems. */
  onNotice?: (message: string, fields: Record<string, string | number>) => void;
  /** Called after a connection is gone and what it attached released (tests wait on it). */
  onConnectionClosed?: (released: number) => void;
}

export interface AttachServerStats {
  connections: number;
  refusedConnections: number;
  attached: number;
  detached: number;
  /** Refused requests by status name (protocol/attach-wire.ts ATTACH_STATUS). */
  refused: Record<string, number>;
  /** Events where the plugin's copy differed from the kernel's page, and the fields. */
  mismatchedEvents: number;
  mismatchedFields: Record<string, number>;
}

interface Conn {
  id: number;
  fd: number;
  pid: number;
  /** The process that connected (SO_PEERPIDFD, or a verified pidfd_open); null where none is had. */
  pidfd: Pidfd | null;
  watch: FdWatch;
  session: bigint | null;
  idle: NodeJS.Timeout | null;
}

const MESSAGES_PER_WAKEUP = 64;

/**
 * Attach connections one process may hold while they hold no vCPU: without it one process held
 * every one of `maxConnections` (each closed only after `idleMs`, then opened again) and another
 * VM's plugin could attach nothing. A plugin opens one attach connection per session and fills it
 * at once (vmm/attach-client.ts, vmm/c, vmm/rust), two while it attaches again on a new one
 * before the old one is seen closed; 8, as for plugin connections before HELLO.
 */
export const EMPTY_ATTACH_PER_PROCESS = 8;

/**
 * Attach connections one process may hold beyond one per plugin session it holds, whatever they
 * hold: without it one process attached one vCPU on each of `maxConnections` connections (a full
 * connection is never idle) and another VM's plugin could attach nothing. A plugin needs one per
 * session, and one more while it attaches again on a new one before the old one is seen closed.
 */
export const SPARE_ATTACH_PER_PROCESS = 1;

/**
 * Whether the connection's peer is the process holding the session: the same pid and, where each
 * has a pidfd, both alive (two live processes never share a pid). A connection an earlier holder of
 * that pid handed to another process is refused: the pages it passed would be another VM's exits.
 */
function samePeer(session: SessionInfo, conn: Conn): boolean {
  if (session.peer.pid !== conn.pid || conn.pidfd?.exited()) return false;
  return !session.peerPidfd?.exited();
}

export class AttachServer {
  readonly #opts: AttachServerOptions;
  readonly pages: VcpuPages;
  readonly #sessions = new Map<bigint, SessionInfo>();
  readonly #conns = new Map<number, Conn>();
  /** The connections of each pid that connected. */
  readonly #byPid = new ConnectionsByProcess<Conn>((c) => c.pidfd?.exited() ?? false);
  readonly #listener = new AttachListener(
    (fd) => this.#admit(fd),
    (message) => this.#opts.onNotice?.(message, { reason: 'accept' }),
  );
  #nextConn = 1;
  readonly stats: AttachServerStats = {
    connections: 0,
    refusedConnections: 0,
    attached: 0,
    detached: 0,
    refused: {},
    mismatchedEvents: 0,
    mismatchedFields: {},
  };

  constructor(opts: AttachServerOptions) {
    this.#opts = opts;
    this.pages = new VcpuPages(opts);
  }

  /** For PipelineOptions.kernelExit. */
  get kernelExit(): VcpuPages['kernelExit'] {
    return this.pages.kernelExit;
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  /** The socket's path: where it listens, else where it would. */
  get address(): string {
    return this.#listener.address ?? this.#opts.path;
  }

  /**
   * Creates the socket, or serves the listening one the service manager passed in (`fd`), and
   * starts accepting. SEAWALL_ATTACH_LISTEN when it cannot.
   */
  listen(fd?: number): void {
    if (fd === undefined) this.#listener.listen(this.#opts.path, this.#opts.mode);
    else this.#listener.adopt(fd);
  }

  /** The sink that tells the server which sessions exist and counts kernel/plugin mismatches. */
  sink(): Sink {
    return {
      name: 'attach',
      sessionOpened: (s) => {
        this.#sessions.set(s.id, s);
      },
      sessionClosed: (s) => this.#sessionEnded(s.id),
      afterReply: (batch) => {
        for (const r of batch) {
          if (!r.kernelMismatch || r.kernelMismatch.length === 0) continue;
          this.stats.mismatchedEvents++;
          for (const f of r.kernelMismatch)
            this.stats.mismatchedFields[f] = (this.stats.mismatchedFields[f] ?? 0) + 1;
        }
      },
    };
  }

  /** Stops listening, closes every connection and releases every attachment. */
  close(): void {
    this.#listener.close();
    for (const c of [...this.#conns.values()]) this.#drop(c);
    this.pages.releaseAll();
    this.#sessions.clear();
  }

  #admit(fd: number): void {
    if (this.#conns.size >= this.#opts.maxConnections) {
      closeFd(fd);
      this.stats.refusedConnections++;
      return;
    }
    let peer: ReturnType<typeof peerProcess>;
    try {
      peer = peerProcess(fd);
    } catch {
      closeFd(fd);
      this.stats.refusedConnections++;
      return;
    }
    const pid = peer.cred.pid;
    if (
      this.#emptyOf(pid) >= EMPTY_ATTACH_PER_PROCESS ||
      this.#byPid.count(pid) >= this.#sessionsOf(pid) + SPARE_ATTACH_PER_PROCESS
    ) {
      closeFd(fd);
      peer.pidfd?.close();
      this.stats.refusedConnections++;
      return;
    }
    const id = this.#nextConn++;
    const conn: Conn = {
      id,
      fd,
      pid: peer.cred.pid,
      pidfd: peer.pidfd,
      session: null,
      idle: null,
      watch: watchReadable(fd, () => this.#read(conn)),
    };
    this.#armIdle(conn);
    this.#conns.set(id, conn);
    this.#byPid.add(conn.pid, conn);
    this.stats.connections++;
  }

  #read(conn: Conn): void {
    // A plugin that closed its attach connection (its wait for a reply ran out) reads no replies,
    // and what it still had queued must not be carried out: an ATTACH read now could take a vCPU
    // over from the plugin's live connection, only to release it at this one's end.
    if (peerHungUp(conn.fd)) {
      this.#drop(conn);
      return;
    }
    for (let i = 0; i < MESSAGES_PER_WAKEUP && this.#conns.has(conn.id); i++) {
      let m: ReturnType<typeof recvWithFds>;
      try {
        m = recvWithFds(conn.fd);
      } catch {
        this.#drop(conn);
        return;
      }
      if (m === null) return;
      if (m === 'eof') {
        this.#drop(conn);
        return;
      }
      this.#handle(conn, m.data, m.fds, m.truncated);
    }
  }

  #handle(conn: Conn, data: Buffer, fds: number[], truncated: boolean): void {
    let op: AttachOp = ATTACH_OP.ATTACH;
    let vcpu = 0;
    let status: number;
    try {
      const req = decodeAttachRequest(data);
      op = req.op;
      vcpu = req.vcpu;
      status = this.#apply(conn, req.op, req.sessionId, req.vcpu, fds, truncated);
    } catch {
      for (const f of fds) closeFd(f);
      status = ATTACH_STATUS.MALFORMED;
    }
    if (status === ATTACH_STATUS.OK) {
      if (op === ATTACH_OP.ATTACH) this.stats.attached++;
      else this.stats.detached++;
    } else {
      const name = ATTACH_STATUS_NAME[status] ?? String(status);
      this.stats.refused[name] = (this.stats.refused[name] ?? 0) + 1;
      this.#opts.onNotice?.(`vCPU ${op === ATTACH_OP.ATTACH ? 'attach' : 'detach'} refused: ${name}`, {
        reason: name,
        pid: conn.pid,
        vcpu,
      });
    }
    let sent = false;
    try {
      sent = sendWithFds(conn.fd, encodeAttachReply({ op, vcpu, status }));
    } catch {
      sent = false;
    }
    // A peer that does not read its replies, or a protocol violation, loses the connection.
    if (!sent || CLOSING_STATUSES.has(status)) this.#drop(conn);
  }

  /** Applies one request; owns `fds` (every one is kept or closed). */
  #apply(
    conn: Conn,
    op: AttachOp,
    sessionId: bigint,
    vcpu: number,
    fds: number[],
    truncated: boolean,
  ): number {
    const expected = op === ATTACH_OP.ATTACH ? 1 : 0;
    if (fds.length !== expected || truncated) {
      for (const f of fds) closeFd(f);
      return ATTACH_STATUS.FD_COUNT;
    }
    const fd = fds[0];
    const refuse = (status: number): number => {
      if (fd !== undefined) closeFd(fd);
      return status;
    };
    if (conn.session !== null && conn.session !== sessionId) return refuse(ATTACH_STATUS.SESSION_MISMATCH);
    const session = this.#sessions.get(sessionId);
    if (!session) return refuse(ATTACH_STATUS.UNKNOWN_SESSION);
    if (!samePeer(session, conn)) return refuse(ATTACH_STATUS.PEER_MISMATCH);
    conn.session = sessionId;
    const status =
      op === ATTACH_OP.DETACH
        ? this.pages.detach(sessionId, vcpu, conn.id)
        : this.pages.attach(session, vcpu, fd as number, conn.id);
    // Only what it holds keeps a connection (one plugin could otherwise hold every slot): refused
    // requests, a detach of its last vCPU and a takeover by another connection start its `idleMs`.
    for (const c of this.#conns.values()) {
      if (c.session !== sessionId) continue;
      if (this.pages.owns(sessionId, c.id)) {
        if (c.idle) clearTimeout(c.idle);
        c.idle = null;
      } else if (c.idle === null) this.#armIdle(c);
    }
    return status;
  }

  /** Closes the connection `idleMs` from now unless it attaches a vCPU meanwhile. */
  #armIdle(conn: Conn): void {
    conn.idle = setTimeout(() => this.#drop(conn), this.#opts.idleMs);
    conn.idle.unref();
  }

  #sessionEnded(id: bigint): void {
    this.#sessions.delete(id);
    this.pages.releaseSession(id);
    for (const c of [...this.#conns.values()]) if (c.session === id) this.#drop(c);
  }

  /**
   * Connections of the live process `pid` that hold no vCPU. One whose connecting process has
   * exited does not count: the pid may name another process now.
   */
  #emptyOf(pid: number): number {
    return this.#byPid.count(pid, (c) => c.session === null || !this.pages.owns(c.session, c.id));
  }

  /** Live plugin sessions of process `pid`: one whose process has exited leaves the pid its share. */
  #sessionsOf(pid: number): number {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.peer.pid === pid && !s.peerPidfd?.exited()) n++;
    return n;
  }

  #drop(conn: Conn): void {
    if (!this.#conns.delete(conn.id)) return;
    this.#byPid.remove(conn.pid, conn);
    if (conn.idle) clearTimeout(conn.idle);
    conn.watch.close();
    const released = conn.session === null ? 0 : this.pages.releaseOwner(conn.session, conn.id);
    closeFd(conn.fd);
    conn.pidfd?.close();
    this.#opts.onConnectionClosed?.(released);
  }
}

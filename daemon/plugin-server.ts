/**
 * The plugin socket: accepts connections (on a path it creates, or on an fd handed over by socket
 * activation), authenticates each peer by SO_PEERCRED, admits HELLOs, and keeps the bounds —
 * connections, a few per process before HELLO, one live session per VM id — with a REJECT that
 * says which bound was hit.
 */
import { chmodSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { EventBus, SessionInfo, SessionOutcome } from '../events/index.js';
import {
  boundSocketPath,
  ConnectionsByProcess,
  checkSocketPath,
  claimSocketPath,
  type PeerProcess,
  peerGroups,
  peerProcess,
} from '../kvm/index.js';
import {
  APPLIED_SOURCE,
  type AppliedMsg,
  type EventMsg,
  encodeMessage,
  GOODBYE_REASON,
  type HelloMsg,
  PROTOCOL_VERSION,
  ProtocolError,
} from '../protocol/index.js';
import type { PluginLimits, VmIdOwner } from './config.js';
import { DaemonError } from './errors.js';
import { ensureSafeDir } from './paths.js';
import type { Pipeline } from './pipeline.js';
import { PRE_HELLO_PER_PROCESS } from './pre-hello.js';
import { PluginSession, type SessionHost } from './session.js';
import { sessionInfo } from './session-info.js';

export interface PluginServerOptions {
  bus: EventBus;
  pipeline: Pipeline;
  allow: { uids: readonly number[]; gids: readonly number[] };
  /** VM-id prefixes bound to uids/gids (config `vmIdOwners`); none by default. */
  vmIdOwners?: readonly VmIdOwner[];
  /** The timeouts default to the config's defaults when left out. */
  limits: Omit<PluginLimits, 'helloTimeoutMs' | 'frameTimeoutMs'> &
    Partial<Pick<PluginLimits, 'helloTimeoutMs' | 'frameTimeoutMs'>>;
  heartbeatMs: number;
}

export type ListenTarget = { path: string; mode: number } | { fd: number };

export class PluginServer implements SessionHost {
  readonly #opts: PluginServerOptions;
  readonly #server: Server;
  readonly #connections = new Set<PluginSession>();
  /**
   * The connections that hold a slot of `maxSessions`: those not refused and not closing. One
   * being closed — its REJECT, ERROR or GOODBYE on the way, 2 s at most once written — holds none,
   * or a peer reconnecting without reading or closing what it is refused would fill them all.
   */
  readonly #open = new Set<PluginSession>();
  readonly #byVm = new Map<string, PluginSession>();
  /** Connections not yet past HELLO, by the process that connected (pre-hello.ts). */
  readonly #preHello = new ConnectionsByProcess<PluginSession>((s) => s.peerExited());
  #nextId = 1n;
  #stopping = false;
  #path: string | null = null;
  /** The file an activated socket is bound to (its ListenStream=); systemd's, never unlinked here. */
  #activatedPath: string | null = null;
  /** Group owning the listening socket (its file, or the activated socket's inode). */
  #socketGid = -1;

  constructor(opts: PluginServerOptions) {
    this.#opts = opts;
    this.#server = createServer({ pauseOnConnect: false }, (socket) => this.#accept(socket));
  }

  get maxBody(): number {
    return this.#opts.limits.maxBody;
  }
  get writeHighWater(): number {
    return this.#opts.limits.writeHighWater;
  }
  get maxInFlight(): number {
    return this.#opts.limits.maxInFlight;
  }
  get helloTimeoutMs(): number {
    return this.#opts.limits.helloTimeoutMs ?? 5000;
  }
  get frameTimeoutMs(): number {
    return this.#opts.limits.frameTimeoutMs ?? 10_000;
  }
  /** Sessions past HELLO. */
  get sessions(): SessionInfo[] {
    return [...this.#byVm.values()].map((s) => s.info as SessionInfo);
  }
  get connectionCount(): number {
    return this.#connections.size;
  }
  /** Connections not yet past HELLO (refused ones excluded). */
  get preHelloCount(): number {
    return this.#preHello.size;
  }
  /** Connections not read at the moment because a bound holds them (backpressure). */
  get heldCount(): number {
    let n = 0;
    for (const s of this.#connections) if (s.held) n++;
    return n;
  }
  /** The write-ahead bound (store/write-ahead.ts `pressure`) holds these; returns the VMs newly held. */
  holdForStore(ids: readonly bigint[]): string[] {
    const held = new Set(ids);
    const vms: string[] = [];
    for (const s of this.#connections) {
      if (!s.info || !held.has(s.info.id) || s.heldForStore) continue;
      s.holdForStore(true);
      vms.push(s.info.vm.id);
    }
    return vms;
  }

  /** These sessions, held by the write-ahead bound, are read again. */
  releaseStoreHolds(ids: readonly bigint[]): void {
    const held = new Set(ids);
    for (const s of this.#connections) if (s.info && held.has(s.info.id)) s.holdForStore(false);
  }

  get address(): string {
    return this.socketPath ?? 'socket-activated fd';
  }
  /** The file the listening socket is bound to, activated or not; null for an unnamed socket. */
  get socketPath(): string | null {
    return this.#path ?? this.#activatedPath;
  }

  async listen(target: ListenTarget): Promise<void> {
    if ('path' in target) {
      checkSocketPath(target.path, 'bind');
      // 0755: VMMs of the socket's group must reach it; nobody else may change the directory.
      ensureSafeDir(dirname(target.path), 0o755, { allowSticky: true });
      if ((await claimSocketPath(target.path)) === 'served')
        throw new DaemonError(
          'SEAWALL_DAEMON_SOCKET_IN_USE',
          `another process is already listening on ${target.path}`,
          {
            path: target.path,
          },
        );
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(target.path, () => {
          this.#server.off('error', reject);
          resolve();
        });
      });
      chmodSync(target.path, target.mode);
      this.#path = target.path;
      this.#socketGid = statSync(target.path).gid;
    } else {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen({ fd: target.fd }, () => {
          this.#server.off('error', reject);
          resolve();
        });
      });
      // The socket file's group (SocketGroup=), not the sockfs inode that fstat(fd) would report.
      // Its path from the kernel: Node's server.address() is null for a server listening on an fd.
      this.#activatedPath = boundSocketPath(target.fd);
      if (this.#activatedPath !== null) this.#socketGid = statSync(this.#activatedPath).gid;
    }
  }

  #accept(socket: Socket): void {
    let proc: PeerProcess | null = null;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    try {
      // Credentials and the pidfd together, now: by HELLO the peer may have exited and its PID
      // been reused (kvm/peer-process.ts).
      if (fd >= 0) proc = peerProcess(fd);
    } catch {
      proc = null;
    }
    const peer = proc?.cred ?? null;
    const session = new PluginSession(socket, this, peer, proc?.pidfd ?? null);
    this.#connections.add(session);
    const refusal = this.#refusal(peer, fd);
    if (refusal) {
      const err = new ProtocolError(refusal[0], refusal[1]);
      this.#opts.bus.emit('sessionRejected', err.reason, refusal[1], peer);
      session.close({ type: 'reject', code: err.wire, message: refusal[1] }, 'protocol_error', refusal[1]);
      return;
    }
    this.#open.add(session);
    if (peer) this.#preHello.add(peer.pid, session);
  }

  /**
   * A peer is allowed by uid, or by a group — its primary gid or, when that does not match, its
   * supplementary groups (SO_PEERGROUPS). The listening socket's own group is always allowed: its
   * file mode (0660) already admits that group, and the unit's SocketGroup= names it.
   */
  #allowed(peer: NonNullable<PluginSession['peer']>, fd: number): boolean {
    const { uids, gids } = this.#opts.allow;
    if (uids.includes(peer.uid)) return true;
    const ok = (g: number) => gids.includes(g) || g === this.#socketGid;
    if (ok(peer.gid)) return true;
    try {
      return fd >= 0 && peerGroups(fd).some(ok);
    } catch {
      return false;
    }
  }

  /** Why a new connection is refused before HELLO, or null when it may proceed. */
  #refusal(
    peer: PluginSession['peer'],
    fd: number,
  ): ['UNAUTHORIZED' | 'TOO_MANY_SESSIONS' | 'SHUTTING_DOWN', string] | null {
    if (this.#stopping) return ['SHUTTING_DOWN', 'the daemon is stopping'];
    if (!peer) return ['UNAUTHORIZED', 'peer credentials unavailable (SO_PEERCRED)'];
    if (!this.#allowed(peer, fd)) {
      return ['UNAUTHORIZED', `uid ${peer.uid} / gid ${peer.gid} is not allowed to connect`];
    }
    if (this.#preHello.count(peer.pid) >= PRE_HELLO_PER_PROCESS) {
      return [
        'TOO_MANY_SESSIONS',
        `at most ${PRE_HELLO_PER_PROCESS} connections per process before HELLO; this process holds them`,
      ];
    }
    if (this.#open.size >= this.#opts.limits.maxSessions) {
      return ['TOO_MANY_SESSIONS', `at most ${this.#opts.limits.maxSessions} plugin connections`];
    }
    return null;
  }

  admit(session: PluginSession, hello: HelloMsg): SessionInfo {
    // The decoder has already refused a version not spoken here (REJECT VERSION).
    this.#checkOwner(hello.vmId, session.peer);
    const held = this.#byVm.get(hello.vmId);
    // Its VMM gone while a bound held it (end of file unseen): the VM's new session takes over.
    if (held?.hungUpWhileHeld()) held.drop('the peer hung up while the daemon held it');
    if (held?.open) {
      // Nothing about the holder: any allowed peer may ask, and its pid is not that peer's business.
      throw new ProtocolError('VM_IN_USE', `VM id '${hello.vmId}' is held by a live session`);
    }
    const info = sessionInfo(
      this.#nextId++,
      hello,
      session.peer ?? { pid: 0, uid: 0, gid: 0 },
      Date.now(),
      session,
    );
    this.#byVm.set(hello.vmId, session);
    if (session.peer) this.#preHello.remove(session.peer.pid, session);
    session.queue(
      encodeMessage({
        type: 'welcome',
        version: PROTOCOL_VERSION,
        minor: info.minor,
        maxInFlight: this.#opts.limits.maxInFlight,
        sessionId: info.id,
        heartbeatMs: this.#opts.heartbeatMs,
        maxBody: this.#opts.limits.maxBody,
      }),
    );
    session.flush();
    this.#opts.bus.emit('sessionOpened', info);
    return info;
  }

  /** Refuses a HELLO for a VM id whose longest bound prefix does not list this peer. */
  #checkOwner(vmId: string, peer: PluginSession['peer']): void {
    let rule: VmIdOwner | undefined;
    for (const o of this.#opts.vmIdOwners ?? [])
      if (vmId.startsWith(o.prefix) && (!rule || o.prefix.length > rule.prefix.length)) rule = o;
    if (!rule || !peer || peer.uid === 0) return;
    if (rule.uids.includes(peer.uid) || rule.gids.includes(peer.gid)) return;
    throw new ProtocolError(
      'UNAUTHORIZED',
      `VM ids starting with '${rule.prefix}' are bound to other users; uid ${peer.uid} may not claim '${vmId}'`,
    );
  }

  submit(session: PluginSession, msg: EventMsg, receivedNs: bigint): void {
    this.#opts.pipeline.submit(session, msg, receivedNs);
  }

  echo(session: PluginSession, frame: Buffer): void {
    this.#opts.pipeline.afterBatch(session, frame);
  }

  closing(session: PluginSession): void {
    this.#open.delete(session);
    // Its REJECT, ERROR or GOODBYE on the way: it no longer counts before HELLO either.
    if (session.peer) this.#preHello.remove(session.peer.pid, session);
    this.#opts.pipeline.endSession(session);
  }

  applied(session: PluginSession, m: AppliedMsg): void {
    if (!session.info) return;
    const detail = m.applied
      ? {
          action: m.applied.action,
          source: m.applied.source === APPLIED_SOURCE.FALLBACK ? ('fallback' as const) : ('verdict' as const),
        }
      : null;
    this.#opts.bus.emit('applied', session.info, m.seq, m.result, detail);
  }

  protocolError(session: PluginSession, err: ProtocolError): void {
    // A HELLO refused (VM id held or bound, version) is a rejection; anything else violates the
    // protocol. Only a session not yet admitted can be rejected: one that has its info is counted
    // once, as it closes.
    const refusedHello =
      err.code === 'SEAWALL_PROTO_VM_IN_USE' ||
      err.code === 'SEAWALL_PROTO_VERSION' ||
      err.code === 'SEAWALL_PROTO_UNAUTHORIZED';
    if (refusedHello && !session.info) {
      this.#opts.bus.emit('sessionRejected', err.reason, err.message, session.peer);
    } else {
      this.#opts.bus.emit('protocolError', err.reason, err.message, session.info);
    }
  }

  closed(session: PluginSession, outcome: SessionOutcome, detail: string | null): void {
    this.#connections.delete(session);
    this.#open.delete(session);
    if (session.peer) this.#preHello.remove(session.peer.pid, session);
    const info = session.info;
    if (!info) return;
    if (this.#byVm.get(info.vm.id) === session) this.#byVm.delete(info.vm.id);
    this.#opts.bus.emit('sessionClosed', info, outcome, detail);
  }

  /** Stops accepting, answers everything already decoded, says GOODBYE, and waits for the peers to go. */
  async stop(graceMs = 2000): Promise<void> {
    this.#stopping = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#opts.pipeline.drain();
    const gone = [...this.#connections].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.state === 'closed') return resolve();
          s.socket.once('close', () => resolve());
          s.close({ type: 'goodbye', reason: GOODBYE_REASON.SHUTDOWN }, 'shutdown', null);
        }),
    );
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(gone), timer]);
    for (const s of this.#connections) s.socket.destroy();
    // The socket file went when the listener closed (libuv removes it at once). Removing the path
    // again here would remove the socket of another daemon that has bound it meanwhile.
    await Promise.race([closed, timer]);
  }
}

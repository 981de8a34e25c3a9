/**
 * The control socket server: newline-delimited JSON requests and responses over a Unix stream
 * socket. Bounded: a request line over `maxRequestBytes` is answered SEAWALL_CONTROL_TOO_LARGE
 * and the connection closed (the limit is checked before buffering); past `maxConnections` a new
 * connection is answered SEAWALL_CONTROL_BUSY and closed, and peers other than root and the
 * daemon's uid may hold only `maxConnections - reservedConnections` of them, so that whoever may
 * open a widened socket cannot lock root out. Every wait on a peer has an absolute deadline that
 * its bytes do not extend: a connection with nothing in progress is closed `idleTimeoutMs` after
 * its last answer, a request line must end `requestTimeoutMs` after its first byte, an answer must
 * drain within `writeTimeoutMs`. Requests on one connection are answered in order, one at a time:
 * the socket is paused while a request runs (no deadline: that is the daemon's own work) and
 * until its answer has drained (explicit backpressure). A peer may end its side after its
 * requests (`printf … | socat`): its whole lines are answered, then the connection ends. A
 * connection's slot is held until its running request ends, even once the peer has gone.
 *
 * Longer than 350 lines: a connection's life (its deadlines, backpressure, half-close and slot) is
 * one closure, which reads best whole.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { thrownText } from '../errors/index.js';
import { assertNever, boundSocketPath, type PeerCred, peerCred } from '../kvm/index.js';
import { authorize } from './authorize.js';
import { CommandArgs, type ControlCommand, type ControlContext, ControlRequest } from './commands.js';
import { ControlError, isControlError } from './errors.js';
import { type ControlListenTarget, listenControl } from './listen.js';
import { echoedId, encode, errorReply, line, NL, type Reply } from './replies.js';

export interface ControlServerOptions {
  /** Largest request line in bytes (default 64 KiB). */
  maxRequestBytes?: number;
  /** Most simultaneous connections (default 16). */
  maxConnections?: number;
  /** Slots only root and the daemon's uid may take (default 2; others get at least one). */
  reservedConnections?: number;
  /** A connection with no request in progress is closed this long after its last answer (default 30 s). */
  idleTimeoutMs?: number;
  /** How long a peer answered BUSY has to read the answer before it is dropped (default 1 s). */
  refuseGraceMs?: number;
  /** A request line must end this long after its first byte (default 10 s). */
  requestTimeoutMs?: number;
  /** An answer the peer does not read must drain within this (default 30 s). */
  writeTimeoutMs?: number;
  /** The uid allowed to mutate besides root (default: the daemon's own). */
  daemonUid?: number;
  /**
   * Reports a command that threw (the client gets SEAWALL_CONTROL_FAILED), or a reply that could
   * not be made (`reply`: its connection is closed).
   */
  onError?: (cmd: string, err: unknown) => void;
}

/** Connections answered BUSY and still closing, at most, at once (`#refuse`). */
export const MAX_REFUSING = 64;

export class ControlServer {
  readonly maxRequestBytes: number;
  readonly maxConnections: number;
  readonly reservedConnections: number;
  readonly #ctx: ControlContext;
  readonly #opts: ControlServerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** The admitted connections of peers other than root and the daemon's uid. */
  readonly #unprivileged = new Set<Socket>();
  /** Connections answered BUSY and closing; not counted against the bound, bounded by MAX_REFUSING. */
  readonly #refused = new Set<Socket>();
  #path: string | null = null;
  /** The file an activated socket is bound to (its ListenStream=); systemd's, never unlinked here. */
  #activatedPath: string | null = null;
  #closing: Promise<void> | null = null;

  constructor(ctx: ControlContext, opts: ControlServerOptions = {}) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.maxRequestBytes = opts.maxRequestBytes ?? 64 * 1024;
    this.maxConnections = opts.maxConnections ?? 16;
    this.reservedConnections = Math.max(0, Math.min(opts.reservedConnections ?? 2, this.maxConnections - 1));
    // Half-open: a peer that ends its side after its request (`printf … | socat`) still gets the answer.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
  }

  /** The socket path, or `socket-activated fd`. */
  get address(): string {
    return this.socketPath ?? 'socket-activated fd';
  }

  /** The file the listening socket is bound to, activated or not; null for an unnamed socket. */
  get socketPath(): string | null {
    return this.#path ?? this.#activatedPath;
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  /** Connections answered BUSY and not yet closed (tests). */
  get refusingCount(): number {
    return this.#refused.size;
  }

  /** Binds (path: created 0600 unless `mode` says otherwise; fd: socket activation). */
  async listen(target: ControlListenTarget): Promise<void> {
    this.#path = await listenControl(this.#server, target);
    if ('fd' in target) this.#activatedPath = boundSocketPath(target.fd);
  }

  /** Stops accepting, drops open connections, removes the socket file it created. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      // Closing the listener removes the socket file it made (libuv does, at once); the path is not
      // removed again, which could remove the socket of a daemon that has bound it since.
      this.#server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
      for (const s of this.#refused) s.destroy();
    });
    return this.#closing;
  }

  #daemonUid(): number {
    return this.#opts.daemonUid ?? process.getuid?.() ?? 0;
  }

  /**
   * Answers BUSY and closes; the peer gets a second to read it, however it drips bytes. Past
   * MAX_REFUSING such connections at once the newcomer is closed unanswered: a peer opening
   * connections faster than a second's worth could otherwise hold the daemon's descriptors.
   */
  #refuse(socket: Socket, message: string): void {
    if (this.#refused.size >= MAX_REFUSING) {
      socket.destroy();
      return;
    }
    // Read (and discard) so the peer's EOF is seen and the socket closes; never admitted.
    socket.on('error', () => socket.destroy());
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), this.#opts.refuseGraceMs ?? 1000);
    this.#refused.add(socket);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#refused.delete(socket);
    });
    socket.end(line(errorReply(null, new ControlError('SEAWALL_CONTROL_BUSY', message))));
  }

  #accept(socket: Socket): void {
    let peer: PeerCred | null = null;
    try {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd === 'number' && fd >= 0) peer = peerCred(fd);
    } catch {
      peer = null; // mutating commands will be refused; reading stays possible
    }
    const privileged = peer !== null && (peer.uid === 0 || peer.uid === this.#daemonUid());
    const othersMax = this.maxConnections - this.reservedConnections;
    if (this.#sockets.size >= this.maxConnections) {
      this.#refuse(socket, `at most ${this.maxConnections} control connections at once`);
      return;
    }
    if (!privileged && this.#unprivileged.size >= othersMax) {
      this.#refuse(
        socket,
        `at most ${othersMax} control connections at once for users other than root and uid ${this.#daemonUid()}`,
      );
      return;
    }
    this.#sockets.add(socket);
    if (!privileged) this.#unprivileged.add(socket);
    socket.on('error', () => socket.destroy());
    const idleMs = this.#opts.idleTimeoutMs ?? 30_000;
    const requestMs = this.#opts.requestTimeoutMs ?? 10_000;
    const writeMs = this.#opts.writeTimeoutMs ?? 30_000;
    // One deadline at a time, set when a wait on the peer begins and never moved by its bytes.
    let timer: NodeJS.Timeout | undefined;
    let waiting: 'idle' | 'request' | 'write' | 'none' = 'none';
    const wait = (what: typeof waiting, ms: number) => {
      clearTimeout(timer);
      waiting = what;
      timer = what === 'none' ? undefined : setTimeout(() => socket.destroy(), ms);
    };
    const release = () => {
      this.#sockets.delete(socket);
      this.#unprivileged.delete(socket);
    };
    // A request still running keeps its connection's slot until it ends: a peer that closes right
    // after each request must not have more of them run at once than it may hold connections.
    socket.once('close', () => {
      clearTimeout(timer);
      if (!busy) release();
    });
    wait('idle', idleMs);
    const lines: string[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let busy = false;
    let closing = false;
    /** The peer has ended its side: its last requests are answered, then the connection ends. */
    let ended = false;
    const finish = () => {
      closing = true;
      wait('write', writeMs);
      socket.end();
    };

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      socket.pause();
      // No deadline while a request runs: a reload of a large policy may take minutes.
      wait('none', 0);
      while (lines.length > 0 && !socket.destroyed) {
        const reply = await this.#handle(lines.shift() as string, peer);
        // Gone while the request ran (the peer, or close() at a stop): its 'close' has come and
        // gone, so nothing below would ever end — a write deadline would hold the process.
        if (socket.destroyed) break;
        let pieces: (string | Uint8Array)[];
        try {
          pieces = encode(reply);
        } catch (err) {
          // Not the peer's to bring the daemon down with: its connection goes, and it is said.
          this.#opts.onError?.('reply', err);
          socket.destroy();
          break;
        }
        // Corked: the pieces leave in one write.
        socket.cork();
        let room = true;
        for (const piece of pieces) room = socket.write(piece);
        socket.uncork();
        if (!room) {
          wait('write', writeMs);
          await drainedOrClosed(socket);
          wait('none', 0);
        }
      }
      busy = false;
      if (socket.destroyed) release();
      if (socket.destroyed || closing) return;
      if (ended) return finish();
      // Bytes of the next request that came with the last one start its deadline now.
      wait(pendingBytes > 0 ? 'request' : 'idle', pendingBytes > 0 ? requestMs : idleMs);
      socket.resume();
    };

    const tooLarge = () => {
      closing = true;
      wait('write', writeMs);
      lines.length = 0;
      pending = [];
      socket.removeAllListeners('data');
      socket.resume(); // discard whatever else arrives
      socket.end(
        line(
          errorReply(
            null,
            new ControlError(
              'SEAWALL_CONTROL_TOO_LARGE',
              `request line over ${this.maxRequestBytes} bytes; closing the connection`,
            ),
          ),
        ),
      );
    };

    socket.on('data', (chunk: Buffer) => {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NL, start);
        const end = nl === -1 ? chunk.length : nl;
        // The bound is checked before the bytes are kept.
        if (pendingBytes + (end - start) > this.maxRequestBytes) return tooLarge();
        if (nl === -1) break;
        const part = chunk.subarray(start, nl);
        const line =
          pendingBytes === 0 ? part.toString('utf8') : Buffer.concat([...pending, part]).toString('utf8');
        pending = [];
        pendingBytes = 0;
        if (line.trim() !== '') lines.push(line);
        start = nl + 1;
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
      }
      if (lines.length > 0)
        pump().catch((err: unknown) => {
          busy = false;
          release();
          this.#opts.onError?.('reply', err);
          socket.destroy();
        });
      else if (pendingBytes > 0 && waiting === 'idle') wait('request', requestMs);
    });

    socket.once('end', () => {
      ended = true;
      // A last line without its newline is not a request: only whole lines are answered.
      pending = [];
      pendingBytes = 0;
      if (!busy && !closing) finish();
    });
  }

  async #handle(line: string, peer: PeerCred | null): Promise<Reply> {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return errorReply(null, new ControlError('SEAWALL_CONTROL_BAD_REQUEST', 'request is not valid JSON'));
    }
    const req = ControlRequest.safeParse(raw);
    const id = echoedId(raw);
    if (!req.success) {
      const issue = req.error.issues[0];
      return errorReply(
        id,
        new ControlError(
          'SEAWALL_CONTROL_BAD_REQUEST',
          `bad request: ${issue ? `${issue.path.join('.') || '(top)'}: ${issue.message}` : 'invalid'}`,
        ),
      );
    }
    const cmd = req.data.cmd;
    if (!Object.hasOwn(CommandArgs, cmd)) {
      return errorReply(
        id,
        new ControlError(
          'SEAWALL_CONTROL_UNKNOWN_COMMAND',
          `unknown command '${cmd}' (known: ${Object.keys(CommandArgs).join(', ')})`,
        ),
      );
    }
    const name = cmd as ControlCommand;
    const auth = authorize(name, peer, this.#daemonUid());
    if (!auth.ok) return errorReply(id, new ControlError('SEAWALL_CONTROL_FORBIDDEN', auth.reason));
    const args = CommandArgs[name].safeParse(req.data.args ?? {});
    if (!args.success) {
      const issue = args.error.issues[0];
      return errorReply(
        id,
        new ControlError(
          'SEAWALL_CONTROL_BAD_REQUEST',
          `${name}: ${issue ? `${issue.path.join('.') || 'args'}: ${issue.message}` : 'invalid arguments'}`,
        ),
      );
    }
    try {
      return { id, ok: true, result: await this.#run(name, args.data) };
    } catch (err) {
      this.#opts.onError?.(name, err);
      const e = isControlError(err)
        ? err
        : new ControlError('SEAWALL_CONTROL_FAILED', `${name} failed: ${thrownText(err)}`);
      return errorReply(id, e);
    }
  }

  #run(cmd: ControlCommand, args: Record<string, unknown>): unknown {
    const ctx = this.#ctx;
    switch (cmd) {
      case 'status':
        return ctx.status(args as Parameters<ControlContext['status']>[0]);
      case 'vms':
        return ctx.vms(args as Parameters<ControlContext['vms']>[0]);
      case 'events':
        return ctx.events(args as Parameters<ControlContext['events']>[0]);
      case 'follow':
        return ctx.follow(args as Parameters<ControlContext['follow']>[0]);
      case 'poison':
        return ctx.poison(args as Parameters<ControlContext['poison']>[0]);
      case 'why':
        return ctx.why(args as Parameters<ControlContext['why']>[0]);
      case 'reload':
        return ctx.reload();
      default:
        return assertNever(cmd, 'control command');
    }
  }
}

/** Resolves at the socket's next 'drain' or 'close', whichever comes first, leaving no listener. */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * The control socket server: newline-delimited JSON requests and responses over a Unix stream
 * socket. Bounded: a request line over `maxRequestBytes` is answered SEAWALL_CONTROL_TOO_LARGE
 * and the connection closed (the limit is checked before buffering); past `maxConnections` a new
 * connection is answered SEAWALL_CONTROL_BUSY and closed; an idle connection is closed after
 * `idleTimeoutMs`. Requests on one connection are answered in order, one at a time: the socket is
 * paused while a request runs and until its answer has drained (explicit backpressure).
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { assertNever, type PeerCred, peerCred } from '../kvm/index.js';
import { EncodedJson, jsonText } from '../store/index.js';
import { authorize } from './authorize.js';
import { CommandArgs, type ControlCommand, type ControlContext, ControlRequest } from './commands.js';
import { ControlError, isControlError } from './errors.js';
import { type ControlListenTarget, listenControl } from './listen.js';

export interface ControlServerOptions {
  /** Largest request line in bytes (default 64 KiB). */
  maxRequestBytes?: number;
  /** Most simultaneous connections (default 16). */
  maxConnections?: number;
  /** An idle connection is closed after this long (default 30 s). */
  idleTimeoutMs?: number;
  /** The uid allowed to mutate besides root (default: the daemon's own). */
  daemonUid?: number;
  /** Reports a command that threw (the client gets SEAWALL_CONTROL_FAILED). */
  onError?: (cmd: string, err: unknown) => void;
}

type Reply =
  | { id: unknown; ok: true; result: unknown }
  | { id: unknown; ok: false; error: { code: string; message: string } };

const NL = 0x0a;

function encode(reply: Reply): string | Buffer {
  if (reply.ok && reply.result instanceof EncodedJson) {
    // Made on the reader thread: written as it is, never parsed or stringified here.
    const head = `{"id":${jsonText(reply.id ?? null)},"ok":true,"result":`;
    return Buffer.concat([Buffer.from(head), reply.result.bytes, Buffer.from('}\n')]);
  }
  return `${jsonText(reply)}\n`;
}

function errorReply(id: unknown, err: ControlError): Reply {
  return { id, ok: false, error: { code: err.code, message: err.message } };
}

export class ControlServer {
  readonly maxRequestBytes: number;
  readonly maxConnections: number;
  readonly #ctx: ControlContext;
  readonly #opts: ControlServerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Connections answered BUSY and closing; not counted against the bound. */
  readonly #refused = new Set<Socket>();
  #path: string | null = null;
  #closing: Promise<void> | null = null;

  constructor(ctx: ControlContext, opts: ControlServerOptions = {}) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.maxRequestBytes = opts.maxRequestBytes ?? 64 * 1024;
    this.maxConnections = opts.maxConnections ?? 16;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** The socket path, or `socket-activated fd`. */
  get address(): string {
    return this.#path ?? 'socket-activated fd';
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  /** Binds (path: created 0600 unless `mode` says otherwise; fd: socket activation). */
  async listen(target: ControlListenTarget): Promise<void> {
    this.#path = await listenControl(this.#server, target);
  }

  /** Stops accepting, drops open connections, removes the socket file it created. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
      for (const s of this.#refused) s.destroy();
      if (this.#path) {
        try {
          unlinkSync(this.#path);
        } catch {
          // already gone
        }
      }
    });
    return this.#closing;
  }

  #accept(socket: Socket): void {
    if (this.#sockets.size >= this.maxConnections) {
      // Read (and discard) so the peer's EOF is seen and the socket closes; never admitted.
      socket.on('error', () => socket.destroy());
      socket.resume();
      socket.setTimeout(1000, () => socket.destroy());
      this.#refused.add(socket);
      socket.once('close', () => this.#refused.delete(socket));
      socket.end(
        encode(
          errorReply(
            null,
            new ControlError(
              'SEAWALL_CONTROL_BUSY',
              `at most ${this.maxConnections} control connections at once`,
            ),
          ),
        ),
      );
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const idleMs = this.#opts.idleTimeoutMs ?? 30_000;
    socket.setTimeout(idleMs, () => socket.destroy());
    let peer: PeerCred | null = null;
    try {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd === 'number' && fd >= 0) peer = peerCred(fd);
    } catch {
      peer = null; // mutating commands will be refused; reading stays possible
    }
    const lines: string[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let busy = false;
    let closing = false;

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      socket.pause();
      // Not idle while a request runs: a reload of a large policy may take longer than the timeout.
      socket.setTimeout(0);
      while (lines.length > 0 && !socket.destroyed) {
        const reply = await this.#handle(lines.shift() as string, peer);
        if (!socket.write(encode(reply)))
          await new Promise<void>((resolve) => {
            socket.once('drain', resolve);
            socket.once('close', resolve);
          });
      }
      busy = false;
      if (!socket.destroyed) socket.setTimeout(idleMs);
      if (!closing) socket.resume();
    };

    const tooLarge = () => {
      closing = true;
      lines.length = 0;
      pending = [];
      socket.removeAllListeners('data');
      socket.resume(); // discard whatever else arrives
      socket.end(
        encode(
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
      if (lines.length > 0) void pump();
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
    const id = typeof raw === 'object' && raw !== null ? ((raw as { id?: unknown }).id ?? null) : null;
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
    const auth = authorize(name, peer, this.#opts.daemonUid ?? process.getuid?.() ?? 0);
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
        : new ControlError('SEAWALL_CONTROL_FAILED', `${name} failed: ${(err as Error).message}`);
      return errorReply(id, e);
    }
  }

  #run(cmd: ControlCommand, args: Record<string, unknown>): unknown {
    const ctx = this.#ctx;
    switch (cmd) {
      case 'status':
        return ctx.status();
      case 'vms':
        return ctx.vms();
      case 'events':
        return ctx.events(args as Parameters<ControlContext['events']>[0]);
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

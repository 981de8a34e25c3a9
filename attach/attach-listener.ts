/**
 * The attach socket's listener: one the server makes at a path, or one the service manager passed in
 * (seawall-attach.socket, ListenSequentialPacket=), which then keeps the owner, group and mode its
 * unit gave it (SocketGroup=seawall-vmm: the VMMs' group) and outlives daemon restarts. Each
 * accepted connection goes to `onConnection`; accepting pauses after a failed accept4.
 */
import { mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  acceptSeqpacket,
  boundSocketPath,
  closeFd,
  connectSeqpacket,
  type FdWatch,
  listenSeqpacket,
  watchReadable,
} from '../kvm/index.js';
import { AttachError } from './errors.js';

/**
 * How long accepting pauses after accept4 failed: out of descriptors (EMFILE, ENFILE) the socket
 * stays readable, and watched on, every turn of the event loop failed again (13,000 notices and
 * 0.74 s of CPU a second, every verdict waiting).
 */
export const ACCEPT_RETRY_MS = 250;

export class AttachListener {
  readonly #onConnection: (fd: number) => void;
  readonly #onAcceptFailed: (message: string) => void;
  #fd = -1;
  #path: string | null = null;
  /** Passed in: the socket file is its unit's, left in place at close. */
  #passed = false;
  #watch: FdWatch | null = null;
  #retry: NodeJS.Timeout | null = null;

  constructor(onConnection: (fd: number) => void, onAcceptFailed: (message: string) => void) {
    this.#onConnection = onConnection;
    this.#onAcceptFailed = onAcceptFailed;
  }

  /** The socket's path; null before it listens, or for a passed socket bound to no path. */
  get address(): string | null {
    return this.#path;
  }

  /** Creates the socket at `path`. SEAWALL_ATTACH_LISTEN when it cannot, or another serves it. */
  listen(path: string, mode: number): void {
    // Beside the plugin socket by default, a directory nobody else made under socket activation.
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    let live = -1;
    try {
      live = connectSeqpacket(path);
    } catch {
      // ENOENT or ECONNREFUSED: nobody serves the path; a stale file is replaced below.
    }
    if (live >= 0) {
      closeFd(live);
      throw new AttachError('SEAWALL_ATTACH_LISTEN', `another process is already serving ${path}`);
    }
    try {
      this.#fd = listenSeqpacket(path, mode);
    } catch (err) {
      throw new AttachError('SEAWALL_ATTACH_LISTEN', `attach socket ${path}: ${(err as Error).message}`);
    }
    this.#path = path;
    this.#watchListener();
  }

  /**
   * Serves a listening SEQPACKET socket the service manager passed in (sd_listen_fds(3)). systemd
   * passes it blocking (NonBlocking=no); watching it (libuv's uv_poll_init) makes it non-blocking,
   * so the accept loop ends on EAGAIN as for a socket made here.
   */
  adopt(fd: number): void {
    try {
      this.#path = boundSocketPath(fd);
    } catch (err) {
      throw new AttachError(
        'SEAWALL_ATTACH_LISTEN',
        `passed attach socket fd ${fd}: ${(err as Error).message}`,
      );
    }
    // In the abstract namespace no file mode keeps anyone out.
    if (this.#path === null)
      throw new AttachError('SEAWALL_ATTACH_LISTEN', `passed attach socket fd ${fd} is bound to no path`);
    this.#fd = fd;
    this.#passed = true;
    this.#watchListener();
  }

  /** Stops accepting; a socket file the server made goes with it, as the plugin socket's does. */
  close(): void {
    this.#watch?.close();
    this.#watch = null;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    if (this.#fd >= 0) {
      closeFd(this.#fd);
      if (!this.#passed && this.#path !== null) {
        try {
          unlinkSync(this.#path);
        } catch {
          // already gone
        }
      }
    }
    this.#fd = -1;
  }

  #watchListener(): void {
    this.#watch = watchReadable(this.#fd, () => this.#acceptAll());
  }

  #acceptAll(): void {
    for (;;) {
      let fd: number | null;
      try {
        fd = acceptSeqpacket(this.#fd);
      } catch (err) {
        this.#onAcceptFailed(
          `attach accept failed: ${(err as Error).message}; accepting again in ${ACCEPT_RETRY_MS} ms`,
        );
        this.#watch?.close();
        this.#watch = null;
        this.#retry = setTimeout(() => {
          this.#retry = null;
          if (this.#fd >= 0) this.#watchListener();
        }, ACCEPT_RETRY_MS);
        this.#retry.unref();
        return;
      }
      if (fd === null) return;
      this.#onConnection(fd);
    }
  }
}

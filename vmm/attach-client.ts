/**
 * The plugin side of vCPU attachment (docs/actions.md "vCPU attachment"): after WELCOME, pass each
 * vCPU fd with the session id over the daemon's SOCK_SEQPACKET attach socket, so the daemon can
 * read exits from the kernel's own kvm_run page. Where no /dev/kvm exists (tests, simulator) the
 * vCPUs are stand-ins: sealed memfds laid out as kvm_run, mapped writable here so the "vCPU" can
 * write each exit into its page before reporting it. The record layout is protocol/'s, the same
 * one the daemon decodes.
 */
import {
  assertNever,
  closeFd,
  connectSeqpacket,
  createSealedStandInVcpuFd,
  type FdWatch,
  KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
  KVM_RUN_DEFAULT_MMAP_SIZE,
  type KvmExit,
  RunPage,
  recvWithFds,
  sendWithFds,
  watchReadable,
  writeExit,
} from '../kvm/index.js';
import {
  ATTACH_OP,
  ATTACH_STATUS,
  ATTACH_STATUS_NAME,
  decodeAttachReply,
  encodeAttachRequest,
} from '../protocol/index.js';
import { VmmError } from './errors.js';
import type { ExitReport } from './plugin-client.js';

/** The daemon refused an attach or detach, or the channel failed. */
export class AttachRefusedError extends VmmError {
  /** Wire status, or -1 when the connection closed first. */
  readonly status: number;
  constructor(status: number, message: string) {
    super('SEAWALL_VMM_ATTACH_REFUSED', message, { status });
    this.status = status;
  }
}

/**
 * The daemon did not answer a request within `replyTimeoutMs`. Replies are matched by order, so
 * the connection is closed with it (the daemon releases what it attached) and every request still
 * waiting on it fails the same way.
 */
export class AttachTimeoutError extends VmmError {
  constructor(timeoutMs: number) {
    super('SEAWALL_VMM_ATTACH_TIMEOUT', `no attach reply within ${timeoutMs} ms`, { timeoutMs });
  }
}

export interface AttachClientOptions {
  /** How long each request waits for its reply (default 10 s, the plugin's HELLO timeout). */
  replyTimeoutMs?: number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One attach connection. Requests are answered in order; each call resolves on its reply, or
 * rejects when none comes within `replyTimeoutMs`.
 */
export class AttachClient {
  #fd: number;
  #watch: FdWatch | null;
  readonly #waiting: Waiter[] = [];
  readonly #replyTimeoutMs: number;

  private constructor(fd: number, replyTimeoutMs: number) {
    this.#fd = fd;
    this.#replyTimeoutMs = replyTimeoutMs;
    this.#watch = watchReadable(fd, () => this.#onReadable());
  }

  /** Connects to the daemon's attach socket. */
  static connect(path: string, opts: AttachClientOptions = {}): AttachClient {
    const replyTimeoutMs = opts.replyTimeoutMs ?? 10_000;
    // setTimeout takes 1..2^31-1 ms; anything else would not bound the wait as asked.
    if (!Number.isInteger(replyTimeoutMs) || replyTimeoutMs < 1 || replyTimeoutMs > 0x7fffffff)
      throw new VmmError('SEAWALL_VMM_INVALID_OPTION', `replyTimeoutMs ${replyTimeoutMs}: 1..2147483647 ms`);
    return new AttachClient(connectSeqpacket(path), replyTimeoutMs);
  }

  /** Passes `fd` as vCPU `vcpu` of `sessionId` (the WELCOME's); the daemon keeps its own copy. */
  attach(sessionId: bigint, vcpu: number, fd: number): Promise<void> {
    return this.#send(encodeAttachRequest({ op: ATTACH_OP.ATTACH, sessionId, vcpu }), [fd]);
  }

  /** Asks the daemon to release vCPU `vcpu` (it closes its copy of the fd). */
  detach(sessionId: bigint, vcpu: number): Promise<void> {
    return this.#send(encodeAttachRequest({ op: ATTACH_OP.DETACH, sessionId, vcpu }), []);
  }

  /** Closes the connection: the daemon releases everything attached through it. */
  close(): void {
    this.#watch?.close();
    this.#watch = null;
    if (this.#fd >= 0) closeFd(this.#fd);
    this.#fd = -1;
    this.#failAll(new AttachRefusedError(-1, 'attach connection closed'));
  }

  #send(bytes: Buffer, fds: number[]): Promise<void> {
    if (this.#fd < 0) return Promise.reject(new AttachRefusedError(-1, 'attach connection closed'));
    return new Promise<void>((resolve, reject) => {
      let sent: boolean;
      try {
        sent = sendWithFds(this.#fd, bytes, fds);
      } catch (err) {
        // EPIPE / ECONNRESET: the daemon closed this connection (its session ended).
        reject(new AttachRefusedError(-1, `attach connection failed: ${(err as Error).message}`));
        return;
      }
      if (!sent) {
        reject(new AttachRefusedError(-1, 'attach socket buffer full'));
        return;
      }
      const timer = setTimeout(() => this.#timedOut(), this.#replyTimeoutMs);
      this.#waiting.push({ resolve, reject, timer });
    });
  }

  /** The oldest request went unanswered: the order of replies is lost, so the connection goes. */
  #timedOut(): void {
    this.#failAll(new AttachTimeoutError(this.#replyTimeoutMs));
    this.close();
  }

  #onReadable(): void {
    for (;;) {
      if (this.#fd < 0) return;
      const m = recvWithFds(this.#fd);
      if (m === null) return;
      if (m === 'eof') {
        this.close();
        return;
      }
      for (const f of m.fds) closeFd(f);
      const w = this.#waiting.shift();
      if (!w) continue;
      clearTimeout(w.timer);
      let status: number;
      try {
        status = decodeAttachReply(m.data).status;
      } catch {
        status = ATTACH_STATUS.MALFORMED;
      }
      if (status === ATTACH_STATUS.OK) w.resolve();
      else
        w.reject(
          new AttachRefusedError(
            status,
            `daemon refused: ${ATTACH_STATUS_NAME[status] ?? `status ${status}`}`,
          ),
        );
    }
  }

  #failAll(err: Error): void {
    for (const w of this.#waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

/**
 * Stand-in vCPUs: one sealed memfd per vCPU, shaped like kvm_run and mapped writable here, so the
 * simulated vCPU thread can write each exit where the kernel would.
 */
export class StandInVcpus {
  readonly fds: number[];
  readonly #pages: RunPage[];

  constructor(count: number, length = KVM_RUN_DEFAULT_MMAP_SIZE, name = 'seawall-vcpu') {
    this.fds = [];
    this.#pages = [];
    for (let i = 0; i < count; i++) {
      const fd = createSealedStandInVcpuFd(`${name}-${i}`, length);
      this.fds.push(fd);
      this.#pages.push(RunPage.map(fd, length, true));
    }
  }

  /** Writes `exit` into vCPU `vcpu`'s page, as KVM does before returning from KVM_RUN. */
  write(vcpu: number, exit: KvmExit): void {
    const page = this.#pages[vcpu];
    if (!page) throw new VmmError('SEAWALL_VMM_INVALID_OPTION', `no stand-in vCPU ${vcpu}`, { vcpu });
    writeExit(page.bytes, exit);
  }

  /** Attaches every vCPU over `client` for `sessionId`. */
  async attachAll(client: AttachClient, sessionId: bigint): Promise<void> {
    for (let i = 0; i < this.fds.length; i++) await client.attach(sessionId, i, this.fds[i] as number);
  }

  close(): void {
    for (const p of this.#pages) p.unmap();
    for (const fd of this.fds) closeFd(fd);
    this.#pages.length = 0;
    this.fds.length = 0;
  }
}

const FNV = 1n << 10n;

/**
 * The kvm_run exit record KVM would have written for an exit the VMM reports: what a stand-in vCPU
 * puts in its page before the plugin sends the event (SIGBUS is a signal, not a KVM exit: none).
 */
export function exitOfReport(r: ExitReport): KvmExit | null {
  switch (r.type) {
    case 'sea':
      return {
        reason: 'arm-sea',
        flags: r.kvmFlags,
        esr: r.esr,
        gva: r.gva,
        gvaValid: (r.esr & FNV) === 0n,
        gpa: r.gpa,
        gpaValid: (r.kvmFlags & KVM_EXIT_ARM_SEA_FLAG_GPA_VALID) !== 0n,
      };
    case 'nisv':
      return { reason: 'arm-nisv', esrIss: r.esrIss, faultIpa: r.faultIpa };
    case 'mmio':
      return { reason: 'mmio', physAddr: r.physAddr, data: r.data, len: r.len, isWrite: r.isWrite };
    case 'sigbus':
      return null;
    default:
      return assertNever(r, 'exit report');
  }
}

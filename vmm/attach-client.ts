/**
 * The plugin side of vCPU attachment (docs/actions.md "vCPU attachment"): after WELCOME, pass each
 * vCPU fd with the session id over the daemon's SOCK_SEQPACKET attach socket, so the daemon can
 * read exits from the kernel's own kvm_run page. Where no /dev/kvm exists (tests, simulator) the
 * vCPUs are stand-ins: sealed memfds laid out as kvm_run, mapped writable here so the "vCPU" can
 * write each exit into its page before reporting it. The record layout is repeated here rather
 * than imported from daemon/, as any C or Rust plugin would write it from the document.
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
import type { ExitReport } from './plugin-client.js';

const MAGIC = 0x54415753; // "SWAT"
const VERSION = 1;
const OP_ATTACH = 1;
const OP_DETACH = 2;

/** Reply statuses (docs/actions.md); 0 is success. */
export const ATTACH_REPLY_STATUS = [
  'ok',
  'malformed',
  'fd_count',
  'unknown_session',
  'peer_mismatch',
  'vcpu_range',
  'bad_fd',
  'not_attached',
  'session_mismatch',
] as const;

/** The daemon refused an attach or detach, or the channel failed. */
export class AttachRefusedError extends Error {
  override readonly name = 'AttachRefusedError';
  readonly code = 'SEAWALL_ATTACH_REFUSED';
  /** Wire status, or -1 when the connection closed first. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function request(op: number, sessionId: bigint, vcpu: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt16LE(VERSION, 4);
  b.writeUInt16LE(op, 6);
  b.writeBigUInt64LE(sessionId, 8);
  b.writeUInt32LE(vcpu, 16);
  return b;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** One attach connection. Requests are answered in order; each call resolves on its reply. */
export class AttachClient {
  #fd: number;
  #watch: FdWatch | null;
  readonly #waiting: Waiter[] = [];

  private constructor(fd: number) {
    this.#fd = fd;
    this.#watch = watchReadable(fd, () => this.#onReadable());
  }

  /** Connects to the daemon's attach socket. */
  static connect(path: string): AttachClient {
    return new AttachClient(connectSeqpacket(path));
  }

  /** Passes `fd` as vCPU `vcpu` of `sessionId` (the WELCOME's); the daemon keeps its own copy. */
  attach(sessionId: bigint, vcpu: number, fd: number): Promise<void> {
    return this.#send(request(OP_ATTACH, sessionId, vcpu), [fd]);
  }

  /** Asks the daemon to release vCPU `vcpu` (it closes its copy of the fd). */
  detach(sessionId: bigint, vcpu: number): Promise<void> {
    return this.#send(request(OP_DETACH, sessionId, vcpu), []);
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
      this.#waiting.push({ resolve, reject });
    });
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
      const status = m.data.length === 16 && m.data.readUInt32LE(0) === MAGIC ? m.data.readUInt32LE(12) : 1;
      if (status === 0) w.resolve();
      else
        w.reject(
          new AttachRefusedError(
            status,
            `daemon refused: ${ATTACH_REPLY_STATUS[status] ?? `status ${status}`}`,
          ),
        );
    }
  }

  #failAll(err: Error): void {
    for (const w of this.#waiting.splice(0)) w.reject(err);
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
    if (!page) throw new RangeError(`no stand-in vCPU ${vcpu}`);
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

export { OP_ATTACH as ATTACH_OP_ATTACH, OP_DETACH as ATTACH_OP_DETACH };

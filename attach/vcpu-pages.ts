/**
 * The attached vCPUs: for each plugin session, at most `vcpuCount` (fd, read-only kvm_run mapping)
 * pairs, each owned by the attach connection that brought it. `kernelExit` is the pipeline's seam
 * (PipelineOptions.kernelExit): it reads the exit record from the kernel's page on the verdict
 * path, so it is a map lookup and a 64-byte decode, nothing more.
 */

import type { SessionInfo } from '../events/index.js';
import {
  classifyVcpuFd,
  closeFd,
  INJECTABLE_EXITS,
  KVM_RUN_DEFAULT_MMAP_SIZE,
  type KvmExit,
  RunPage,
  readExitReason,
} from '../kvm/index.js';
import { ATTACH_STATUS, type AttachStatus } from '../protocol/index.js';

interface Attached {
  fd: number;
  page: RunPage;
  owner: number;
}

export interface VcpuPagesOptions {
  /** Mapping length: KVM_GET_VCPU_MMAP_SIZE of this host, or KVM_RUN_DEFAULT_MMAP_SIZE. */
  mmapSize: number;
  /** Accept memfd stand-ins sealed against shrinking (tests, simulator, hosts without /dev/kvm). */
  allowStandIns: boolean;
}

export interface VcpuPagesStats {
  /** Reads of a page whose exit_reason is not MMIO, ARM_NISV or ARM_SEA (answered from the plugin's copy). */
  unknownExit: number;
  /** Pages that could not be read at all (unmapped under us, decode error). */
  readErrors: number;
}

export class VcpuPages {
  readonly #opts: VcpuPagesOptions;
  readonly #bySession = new Map<bigint, Map<number, Attached>>();
  readonly stats: VcpuPagesStats = { unknownExit: 0, readErrors: 0 };

  constructor(opts: VcpuPagesOptions) {
    this.#opts = opts;
  }

  /**
   * Takes ownership of `fd` as vCPU `vcpu` of `session` for connection `owner`: maps it read-only,
   * replacing (and releasing) an earlier attachment of the same vCPU. On failure the fd is closed.
   */
  attach(session: SessionInfo, vcpu: number, fd: number, owner: number): AttachStatus {
    if (vcpu >= session.vcpuCount) {
      closeFd(fd);
      return ATTACH_STATUS.VCPU_RANGE;
    }
    const kind = classifyVcpuFd(fd);
    // A stand-in is mapped at its own (sealed) size: one kvm_run page is all it imitates, while a
    // real host's KVM_GET_VCPU_MMAP_SIZE may add pages (x86's PIO and coalesced-MMIO pages).
    let length = 0;
    if (kind.kind === 'kvm-vcpu') length = this.#opts.mmapSize;
    else if (
      kind.kind === 'memfd' &&
      this.#opts.allowStandIns &&
      kind.sealed &&
      kind.size >= KVM_RUN_DEFAULT_MMAP_SIZE
    )
      length = Math.min(kind.size, Math.max(this.#opts.mmapSize, KVM_RUN_DEFAULT_MMAP_SIZE));
    let page: RunPage | null = null;
    try {
      // Neither a vCPU fd nor an allowed stand-in: refused like an fd that does not map.
      if (length > 0) page = RunPage.map(fd, length);
    } catch {
      page = null;
    }
    if (page === null) {
      closeFd(fd);
      return ATTACH_STATUS.BAD_FD;
    }
    let vcpus = this.#bySession.get(session.id);
    if (!vcpus) {
      vcpus = new Map();
      this.#bySession.set(session.id, vcpus);
    }
    const old = vcpus.get(vcpu);
    if (old) release(old);
    vcpus.set(vcpu, { fd, page, owner });
    return ATTACH_STATUS.OK;
  }

  /** Releases vCPU `vcpu` of `sessionId` if `owner` attached it. */
  detach(sessionId: bigint, vcpu: number, owner: number): AttachStatus {
    const vcpus = this.#bySession.get(sessionId);
    const a = vcpus?.get(vcpu);
    if (!vcpus || !a || a.owner !== owner) return ATTACH_STATUS.NOT_ATTACHED;
    vcpus.delete(vcpu);
    release(a);
    if (vcpus.size === 0) this.#bySession.delete(sessionId);
    return ATTACH_STATUS.OK;
  }

  /** Releases everything connection `owner` attached to `sessionId`. */
  releaseOwner(sessionId: bigint, owner: number): number {
    const vcpus = this.#bySession.get(sessionId);
    if (!vcpus) return 0;
    let n = 0;
    for (const [vcpu, a] of vcpus) {
      if (a.owner !== owner) continue;
      vcpus.delete(vcpu);
      release(a);
      n++;
    }
    if (vcpus.size === 0) this.#bySession.delete(sessionId);
    return n;
  }

  /** Releases every vCPU of a session (it ended). */
  releaseSession(sessionId: bigint): number {
    const vcpus = this.#bySession.get(sessionId);
    if (!vcpus) return 0;
    for (const a of vcpus.values()) release(a);
    this.#bySession.delete(sessionId);
    return vcpus.size;
  }

  releaseAll(): void {
    for (const id of [...this.#bySession.keys()]) this.releaseSession(id);
  }

  /** Whether connection `owner` holds any vCPU of `sessionId`. */
  owns(sessionId: bigint, owner: number): boolean {
    for (const a of this.#bySession.get(sessionId)?.values() ?? []) if (a.owner === owner) return true;
    return false;
  }

  /** Attached vCPUs of a session. */
  count(sessionId: bigint): number {
    return this.#bySession.get(sessionId)?.size ?? 0;
  }

  /** Attached vCPUs in all sessions. */
  get total(): number {
    let n = 0;
    for (const v of this.#bySession.values()) n += v.size;
    return n;
  }

  /** The exit record in the kernel's page of an attached vCPU; null when not attached or not usable. */
  readonly kernelExit = (session: SessionInfo, vcpu: number): KvmExit | null => {
    const a = this.#bySession.get(session.id)?.get(vcpu);
    if (!a) return null;
    try {
      const bytes = a.page.bytes;
      if (!INJECTABLE_EXITS.has(readExitReason(bytes))) {
        this.stats.unknownExit++;
        return null;
      }
      return a.page.readExit();
    } catch {
      this.stats.readErrors++;
      return null;
    }
  };
}

function release(a: Attached): void {
  try {
    a.page.unmap();
  } finally {
    closeFd(a.fd);
  }
}

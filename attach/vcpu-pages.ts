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
  type NonAbortExit,
  RunPage,
  readExitReason,
  type VcpuFdKind,
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
  /**
   * Attached vCPUs, all sessions together (`attach.maxVcpus`): each holds an fd and a mapping of the
   * daemon's, and past vm.max_map_count every mmap in the daemon fails, its runtime's included.
   */
  maxVcpus: number;
}

/**
 * The length to map `kind` at as vCPU `vcpu`, or 0 to refuse it: a KVM vCPU fd only as the vCPU it
 * is (`kvm-vcpu:N`, N the index asked for: one fd passed for every index would otherwise take an fd
 * and a mapping each), a stand-in only where allowed and sealed at a kvm_run page's size at least.
 * A stand-in is mapped at its own (sealed) size: one kvm_run page is all it imitates, while a real
 * host's KVM_GET_VCPU_MMAP_SIZE may add pages (x86's PIO and coalesced-MMIO pages).
 */
export function mappingLength(
  kind: VcpuFdKind,
  vcpu: number,
  opts: Pick<VcpuPagesOptions, 'mmapSize' | 'allowStandIns'>,
): number {
  if (kind.kind === 'kvm-vcpu') return kind.index === vcpu ? opts.mmapSize : 0;
  if (kind.kind !== 'memfd' || !opts.allowStandIns || !kind.sealed) return 0;
  if (kind.size < KVM_RUN_DEFAULT_MMAP_SIZE) return 0;
  return Math.min(kind.size, Math.max(opts.mmapSize, KVM_RUN_DEFAULT_MMAP_SIZE));
}

export interface VcpuPagesStats {
  /** Reads of a page whose exit_reason is not an abort exit (answered with no injection). */
  unknownExit: number;
  /** Pages that could not be read at all (unmapped under us, decode error). */
  readErrors: number;
}

export class VcpuPages {
  readonly #opts: VcpuPagesOptions;
  readonly #bySession = new Map<bigint, Map<number, Attached>>();
  #total = 0;
  readonly stats: VcpuPagesStats = { unknownExit: 0, readErrors: 0 };

  constructor(opts: VcpuPagesOptions) {
    this.#opts = opts;
  }

  /**
   * Takes ownership of `fd` as vCPU `vcpu` of `session` for connection `owner`: maps it read-only,
   * replacing (and releasing) an earlier attachment of the same vCPU. On failure the fd is closed.
   */
  attach(session: SessionInfo, vcpu: number, fd: number, owner: number): AttachStatus {
    const refuse = (status: AttachStatus): AttachStatus => {
      closeFd(fd);
      return status;
    };
    if (vcpu >= session.vcpuCount) return refuse(ATTACH_STATUS.VCPU_RANGE);
    // Re-attaching a vCPU replaces its fd and mapping: only a new one counts against the bound.
    const replaces = this.#bySession.get(session.id)?.has(vcpu) ?? false;
    if (!replaces && this.#total >= this.#opts.maxVcpus) return refuse(ATTACH_STATUS.LIMIT);
    const length = mappingLength(classifyVcpuFd(fd), vcpu, this.#opts);
    let page: RunPage | null = null;
    try {
      // Neither this vCPU's fd nor an allowed stand-in: refused like an fd that does not map.
      if (length > 0) page = RunPage.map(fd, length);
    } catch {
      page = null;
    }
    if (page === null) return refuse(ATTACH_STATUS.BAD_FD);
    let vcpus = this.#bySession.get(session.id);
    if (!vcpus) {
      vcpus = new Map();
      this.#bySession.set(session.id, vcpus);
    }
    const old = vcpus.get(vcpu);
    if (old) this.#release(old);
    vcpus.set(vcpu, { fd, page, owner });
    this.#total++;
    return ATTACH_STATUS.OK;
  }

  /** Releases vCPU `vcpu` of `sessionId` if `owner` attached it. */
  detach(sessionId: bigint, vcpu: number, owner: number): AttachStatus {
    const vcpus = this.#bySession.get(sessionId);
    const a = vcpus?.get(vcpu);
    if (!vcpus || !a || a.owner !== owner) return ATTACH_STATUS.NOT_ATTACHED;
    vcpus.delete(vcpu);
    this.#release(a);
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
      this.#release(a);
      n++;
    }
    if (vcpus.size === 0) this.#bySession.delete(sessionId);
    return n;
  }

  /** Releases every vCPU of a session (it ended). */
  releaseSession(sessionId: bigint): number {
    const vcpus = this.#bySession.get(sessionId);
    if (!vcpus) return 0;
    for (const a of vcpus.values()) this.#release(a);
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
    return this.#total;
  }

  /**
   * The exit record in the kernel's page of an attached vCPU; `not-abort` when the page's last exit
   * is not one an abort may be injected after; null when not attached or the page cannot be read.
   */
  readonly kernelExit = (session: SessionInfo, vcpu: number): KvmExit | NonAbortExit | null => {
    const a = this.#bySession.get(session.id)?.get(vcpu);
    if (!a) return null;
    try {
      const bytes = a.page.bytes;
      const code = readExitReason(bytes);
      if (!INJECTABLE_EXITS.has(code)) {
        this.stats.unknownExit++;
        return { reason: 'not-abort', code };
      }
      return a.page.readExit();
    } catch {
      this.stats.readErrors++;
      return null;
    }
  };

  #release(a: Attached): void {
    this.#total--;
    try {
      a.page.unmap();
    } finally {
      closeFd(a.fd);
    }
  }
}

/**
 * Kill enforcement. The verdict asks the VMM to terminate the VM within grace_ms; the daemon makes
 * sure of it. At HELLO a pidfd is opened for the pid the kernel reported for the plugin connection
 * (SO_PEERCRED — not the HELLO's self-declared vmmPid), so the fd names that one process: if it
 * exits, signalling through the fd answers ESRCH and can never reach whoever inherits its PID
 * (pidfd_open(2), pidfd_send_signal(2)). When the grace ends and the process is still there, it is
 * SIGKILLed through the pidfd. One kill per session is in flight; repeated kill decisions of that
 * session coalesce, and one whose grace ends sooner brings the SIGKILL forward. Another session of
 * the same VM id — the VM restarted, or another process that claimed its id — gets a kill of its
 * own, on its own process.
 *
 * What counts as terminated (docs/protocol.md §5.1): the process exited; or, for a process that
 * serves other VMs too, this VM's session ended with GOODBYE VM_EXITING before the grace did. A
 * session that merely closes, or says GOODBYE NORMAL, has not said its VM is gone, and neither has
 * one whose process has connected again for the same VM id. (A 1.0 session had no such rule: any
 * end of it counts, as 1.0 daemons did.) Nor does the process's exit while its session is still
 * served: the connection lives on in a process it handed it to, which the pidfd does not name (the
 * kill ends `failed` and the session with it, daemon/session.ts, and that process's plugin connects
 * again as itself).
 */

import type { SessionInfo, SessionOutcome } from '../events/index.js';
import { isKvmError, Pidfd, SIGKILL } from '../kvm/index.js';

export type KillOutcome = 'exited' | 'sigkilled' | 'failed';
/** Why the kill was asked for: the policy's verdict, or a migration's onFailure. */
export type KillReason = 'policy' | 'migration_refused' | 'migration_failed' | 'migration_timed_out';

export interface KillRequest {
  session: SessionInfo;
  /** The event whose decision asked for it (its seq in the session); null when none did. */
  seq: number | null;
  rule: string;
  policyVersion: string;
  graceMs: number;
  reason: KillReason;
}

export interface KillRecord {
  /** Unique per kill (per daemon run). */
  id: number;
  vm: string;
  sessionId: bigint;
  /** The event that asked for this kill, when one did. */
  seq: number | null;
  rule: string;
  policyVersion: string;
  reason: KillReason;
  /**
   * The grace the kill is enforced on: the first request's, or a shorter one folded in later (a
   * decision to terminate sooner), counted from that request's arrival.
   */
  graceMs: number;
  /** The pid the kernel reported (SO_PEERCRED): the process the pidfd names. */
  peerPid: number;
  /** The pid the plugin declared in HELLO; recorded, never signalled. */
  vmmPid: number;
  startedAtMs: number;
  /** Kill decisions that arrived while this kill was in flight. */
  coalesced: number;
}

export interface KillResult extends KillRecord {
  outcome: KillOutcome;
  finishedAtMs: number;
  detail: string | null;
}

export interface KillManagerOptions {
  /** false: record what would be done, never signal (outcome `failed`, detail says why). */
  enforce?: boolean;
  onStarted?: (k: KillRecord) => void;
  onFinished?: (k: KillResult) => void;
  /** HELLO's vmmPid differs from the kernel's peer pid (the peer pid is the one used). */
  onPidMismatch?: (s: SessionInfo) => void;
  /** A pidfd could not be opened at HELLO; kills of this session will fail. */
  onPidfdError?: (s: SessionInfo, err: unknown) => void;
  now?: () => number;
}

interface Tracked {
  pidfd: Pidfd | null;
  live: boolean;
  /** Some process still holds the plugin's end of the connection (SessionInfo.connectionHeld). */
  held: (() => boolean) | null;
  /** Ends a session whose connection was handed on (SessionInfo.endHandedOn). */
  endHandedOn: (() => void) | null;
  /** The session ended in a way that says its VM is gone (see the file comment). */
  vmGone: boolean;
  /** Live sessions of other VMs the process had when this one ended (a plugin reconnecting later is one). */
  othersAtEnd: number;
  /** Holders besides the live session (an in-flight kill or migration). */
  holds: number;
}

interface InFlight {
  record: KillRecord;
  tracked: Tracked;
  timer: NodeJS.Timeout | null;
  /** When the grace ends (the `now` clock): the soonest deadline of the requests folded in. */
  deadlineMs: number;
  /** Forgets its wait for the VMM's exit (`Pidfd.onExit`). */
  forget: (() => void) | null;
}

export class KillManager {
  readonly #opts: KillManagerOptions;
  readonly #now: () => number;
  readonly #sessions = new Map<bigint, Tracked>();
  /** Live sessions per peer pid, by VM id. */
  readonly #livePerPid = new Map<number, Map<string, number>>();
  /** By session id. */
  readonly #inFlight = new Map<bigint, InFlight>();
  #nextId = 1;
  readonly stats = { started: 0, coalesced: 0, exited: 0, sigkilled: 0, failed: 0, pidMismatch: 0 };

  constructor(opts: KillManagerOptions = {}) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Kills not yet finished. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Takes the session's pidfd: `pidfd` when the caller took one at accept (SO_PEERPIDFD); null when
   * the caller could not take one safely — kills of this session then fail rather than signal a
   * PID that may have been reused; left out, one is opened for the peer pid now.
   */
  sessionOpened(s: SessionInfo, pidfd?: Pidfd | null): void {
    if (s.vmmPid !== s.peer.pid) {
      this.stats.pidMismatch++;
      this.#opts.onPidMismatch?.(s);
    }
    let fd: Pidfd | null = pidfd ?? null;
    if (pidfd === undefined) {
      try {
        fd = Pidfd.open(s.peer.pid);
      } catch (err) {
        this.#opts.onPidfdError?.(s, err);
      }
    }
    const [held, endHandedOn] = [s.connectionHeld ?? null, s.endHandedOn ?? null];
    const tracked = { pidfd: fd, live: true, held, endHandedOn, vmGone: false, othersAtEnd: 0, holds: 0 };
    this.#sessions.set(s.id, tracked);
    let vms = this.#livePerPid.get(s.peer.pid);
    if (!vms) {
      vms = new Map();
      this.#livePerPid.set(s.peer.pid, vms);
    }
    vms.set(s.vm.id, (vms.get(s.vm.id) ?? 0) + 1);
  }

  /** The session ended; its pidfd is closed unless a kill or migration still holds it. */
  sessionClosed(s: SessionInfo, outcome: SessionOutcome = 'disconnect'): void {
    const t = this.#sessions.get(s.id);
    if (!t?.live) return;
    t.live = false;
    t.vmGone = s.minor >= 1 ? outcome === 'vm_exiting' : true;
    const vms = this.#livePerPid.get(s.peer.pid);
    for (const [vm, live] of vms ?? []) if (vm !== s.vm.id) t.othersAtEnd += live;
    const n = (vms?.get(s.vm.id) ?? 1) - 1;
    if (n > 0) vms?.set(s.vm.id, n);
    else vms?.delete(s.vm.id);
    if (vms?.size === 0) this.#livePerPid.delete(s.peer.pid);
    this.#maybeDrop(s.id, t);
  }

  /** Keeps a session's pidfd open past the session's end (a migration whose onFailure may kill). */
  hold(sessionId: bigint): boolean {
    const t = this.#sessions.get(sessionId);
    if (!t) return false;
    t.holds++;
    return true;
  }

  release(sessionId: bigint): void {
    const t = this.#sessions.get(sessionId);
    if (!t || t.holds === 0) return;
    t.holds--;
    this.#maybeDrop(sessionId, t);
  }

  /**
   * The session's process has not exited: its pidfd is open and not readable (pidfd_open(2)). While
   * that holds, its PID names no other process. false without a pidfd.
   */
  alive(sessionId: bigint): boolean {
    const fd = this.#sessions.get(sessionId)?.pidfd;
    return fd !== null && fd !== undefined && !fd.exited();
  }

  /** Calls `gone` once when the session's process exits; what forgets the wait, or null: no pidfd. */
  onExit(sessionId: bigint, gone: () => void): (() => void) | null {
    const fd = this.#sessions.get(sessionId)?.pidfd;
    return fd && !fd.closed ? fd.onExit(gone) : null;
  }

  /** Starts a kill, or folds it into the one in flight for the same session. */
  request(r: KillRequest): 'started' | 'coalesced' {
    const vm = r.session.vm.id;
    const running = this.#inFlight.get(r.session.id);
    if (running) {
      running.record.coalesced++;
      this.stats.coalesced++;
      this.#hasten(running, r.graceMs);
      return 'coalesced';
    }
    const record: KillRecord = {
      id: this.#nextId++,
      vm,
      sessionId: r.session.id,
      seq: r.seq,
      rule: r.rule,
      policyVersion: r.policyVersion,
      reason: r.reason,
      graceMs: r.graceMs,
      peerPid: r.session.peer.pid,
      vmmPid: r.session.vmmPid,
      startedAtMs: this.#now(),
      coalesced: 0,
    };
    const tracked = this.#sessions.get(r.session.id) ?? {
      pidfd: null,
      live: false,
      held: null,
      endHandedOn: null,
      vmGone: false,
      othersAtEnd: 0,
      holds: 0,
    };
    tracked.holds++;
    const k: InFlight = {
      record,
      tracked,
      timer: null,
      deadlineMs: record.startedAtMs + r.graceMs,
      forget: null,
    };
    this.#inFlight.set(r.session.id, k);
    this.stats.started++;
    this.#opts.onStarted?.(record);
    const pidfd = tracked.pidfd;
    if (!pidfd || pidfd.closed) {
      this.#finish(k, 'failed', 'no pidfd for the VMM (none could be taken safely when it connected)');
      return 'started';
    }
    k.forget = pidfd.onExit(() => this.#exited(k));
    k.timer = setTimeout(() => this.#enforce(k), r.graceMs);
    return 'started';
  }

  /** Stops every timer and closes every pidfd; kills still in grace are recorded as `failed`. */
  close(): void {
    for (const k of [...this.#inFlight.values()])
      this.#finish(k, 'failed', 'the daemon stopped during the grace period');
    for (const t of this.#sessions.values()) t.pidfd?.close();
    this.#sessions.clear();
    this.#livePerPid.clear();
  }

  /**
   * A request folded into a running kill keeps its own deadline when that is sooner: a decision to
   * terminate now is not made to wait out the grace an earlier, milder decision gave.
   */
  #hasten(k: InFlight, graceMs: number): void {
    const deadline = this.#now() + graceMs;
    if (!k.timer || deadline >= k.deadlineMs) return;
    clearTimeout(k.timer);
    k.deadlineMs = deadline;
    k.record.graceMs = graceMs;
    k.timer = setTimeout(() => this.#enforce(k), graceMs);
  }

  #enforce(k: InFlight): void {
    k.timer = null;
    const pidfd = k.tracked.pidfd as Pidfd;
    if (pidfd.exited()) {
      this.#exited(k);
      return;
    }
    // Live sessions of the process for other VMs; one for this VM again means it did not go.
    let others = 0;
    let again = false;
    for (const [vm, n] of this.#livePerPid.get(k.record.peerPid) ?? []) {
      if (vm === k.record.vm) again = true;
      else others += n;
    }
    // Counted when the VM's session ended too: another VM's plugin reconnecting at the grace's end
    // (its deadline passed) is between sessions, and its VM is still served.
    const served = Math.max(others, k.tracked.othersAtEnd);
    if (k.tracked.vmGone && served > 0 && !again) {
      // One VMM process serving several VMs said this VM is gone: the process is not this kill's
      // to end. Without that word it is killed, whatever else it serves.
      this.#finish(k, 'exited', `VM exited; pid ${k.record.peerPid} still serves ${served} VM(s)`);
      return;
    }
    if (this.#opts.enforce === false) {
      this.#finish(k, 'failed', 'enforcement disabled by configuration');
      return;
    }
    try {
      const r = pidfd.signal(SIGKILL);
      if (r === 'sent') this.#finish(k, 'sigkilled', null);
      else this.#exited(k);
    } catch (err) {
      const name = isKvmError(err) ? String(err.detail.errnoName) : (err as Error).message;
      const hint = name === 'EPERM' ? ' (the daemon needs CAP_KILL or the VMM’s uid)' : '';
      this.#finish(k, 'failed', `pidfd_send_signal(SIGKILL): ${name}${hint}`);
    }
  }

  /**
   * The process the pidfd names has exited. Its VM is gone unless the session is still served: a
   * process that connected and handed its connection on (forked, daemonized, passed the fd) and
   * exited leaves the VM running in a process the daemon cannot name, let alone signal. Held is
   * read from the kernel: a VMM's own exit releases its end before its pidfd says it exited, so
   * the daemon not having read the end of file yet does not count as held.
   */
  #exited(k: InFlight): void {
    // Asked after the session's end too: one ended because its connection was handed on says so.
    if (k.tracked.held?.() === true) {
      const why = 'its connection lives on in another process, which the daemon cannot signal';
      this.#finish(k, 'failed', `the connecting process (pid ${k.record.peerPid}) exited; ${why}`);
      k.tracked.endHandedOn?.(); // the holder connects again as itself, for the VM's next kill
      return;
    }
    this.#finish(k, 'exited', null);
  }

  #finish(k: InFlight, outcome: KillOutcome, detail: string | null): void {
    if (this.#inFlight.get(k.record.sessionId) !== k) return;
    this.#inFlight.delete(k.record.sessionId);
    if (k.timer) clearTimeout(k.timer);
    k.timer = null;
    k.forget?.();
    k.forget = null;
    this.stats[outcome]++;
    k.tracked.holds--;
    this.#maybeDrop(k.record.sessionId, k.tracked);
    this.#opts.onFinished?.({ ...k.record, outcome, finishedAtMs: this.#now(), detail });
  }

  #maybeDrop(id: bigint, t: Tracked): void {
    if (t.live || t.holds > 0) return;
    t.pidfd?.close();
    if (this.#sessions.get(id) === t) this.#sessions.delete(id);
  }
}

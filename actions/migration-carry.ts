/**
 * Which plugin sessions are one VM instance, for the migration manager. A plugin that loses its
 * connection (a verdict deadline missed) connects again at once, from the same process, for the
 * same VM id: that next session is the same VM, not a restarted one, and the migration asked for in
 * the first one — queued, running, accepted or refused — is the next one's too. Without that, the
 * next session's error asked the hook again under a new Idempotency-Key, and an orchestrator that
 * answered the duplicate with a refusal had the rule's onFailure kill a VM it was moving.
 *
 * Sessions that are one VM share a key (the first one's id), under which the manager keeps its
 * state. A session takes its predecessor's key when both are of the same VM id and peer pid and the
 * predecessor's process has not exited, as its pidfd shows: while that process lives its PID names
 * no other, so the new connection came from it. A predecessor without a pidfd, or whose process is
 * gone, is another VM instance (a PID may have been reused): the new session starts afresh.
 *
 * The predecessor is the VM's newest live session (one still closing when the next one's HELLO
 * came), or the VM's last ended session while it is kept. An ended session is kept, with its pidfd
 * held through the kill manager, unless its plugin said the VM is exiting (GOODBYE VM_EXITING: a
 * later session of that VM id is the VM restarted); it is forgotten when the VM's next session
 * opens (from any process), when its process exits, or to make room: at most `max` are kept across
 * the host, and a full table gives up the oldest of the peer process that holds the most of it.
 */
import type { SessionInfo } from '../events/index.js';
import type { KillManager } from './kill-manager.js';
import { PeerCounts } from './peer-queue.js';

/** Ended sessions kept for their VM's next session, by default: as many as plugin connections. */
export const MAX_ENDED_KEPT = 1024;

interface Ended {
  session: SessionInfo;
  key: bigint;
  /** Forgets the wait for the process's exit. */
  unwatch: () => void;
}

export class SessionCarry {
  readonly #kills: KillManager;
  readonly #max: number;
  /** The state kept under `key` is used by no session any more. */
  readonly #drop: (key: bigint) => void;
  /**
   * Each session's key, where it is not the session's own id. Weak: a late trigger of an ended
   * session (its last errors' actions come on the next turn) finds the key while anything holds
   * the session, and nothing has to be forgotten.
   */
  readonly #keys = new WeakMap<SessionInfo, bigint>();
  /** Per key: its live sessions and its kept ended session. */
  readonly #users = new Map<bigint, number>();
  /** The newest live session of each VM id. */
  readonly #liveByVm = new Map<string, SessionInfo>();
  /** Ended sessions kept for their VM's next session, by VM id, oldest first. */
  readonly #ended = new Map<string, Ended>();
  /** Kept ended sessions per peer pid: who a full table is taken from. */
  readonly #endedByPid = new PeerCounts();

  constructor(kills: KillManager, max: number, drop: (key: bigint) => void) {
    this.#kills = kills;
    this.#max = max;
    this.#drop = drop;
  }

  /** Ended sessions kept now. */
  get kept(): number {
    return this.#ended.size;
  }

  /** The key the session's migration state is kept under. */
  keyOf(s: SessionInfo): bigint {
    return this.#keys.get(s) ?? s.id;
  }

  /** A live session, or a kept ended one, uses the key: an answer for it stands. */
  inUse(key: bigint): boolean {
    return this.#users.has(key);
  }

  /** Opens `s` as the same VM as its predecessor when that is the same live process. */
  opened(s: SessionInfo): void {
    const vm = s.vm.id;
    const ended = this.#ended.get(vm);
    const prev = ended?.session ?? this.#liveByVm.get(vm);
    if (prev && prev.id !== s.id && prev.peer.pid === s.peer.pid && this.#kills.alive(prev.id))
      this.#keys.set(s, ended?.key ?? this.keyOf(prev));
    this.#use(this.keyOf(s), 1);
    // Forgotten once the next session opened; after `s` took its key, so that state stays.
    if (ended) this.#forget(vm, ended);
    this.#liveByVm.set(vm, s);
  }

  /**
   * `s` ended; unless `vmGone` (its plugin said GOODBYE VM_EXITING), it is kept for the VM's next
   * session while its process lives — whether or not a migration was asked for yet: the trigger of
   * its last errors may come after it ended (the action sink hands decisions over on the next
   * turn, and a slow store delays that turn), and must still be the next session's.
   */
  closed(s: SessionInfo, vmGone: boolean): void {
    const vm = s.vm.id;
    if (this.#liveByVm.get(vm)?.id === s.id) this.#liveByVm.delete(vm);
    const key = this.keyOf(s);
    // A later session of the VM already open took the key on (a reconnect before this one closed),
    // or is another VM instance: nothing is kept for a next one.
    const last = this.#users.get(key) === 1 && !this.#liveByVm.has(vm);
    if (last && !vmGone && this.#keep(s, key)) return; // the ended session now uses the key
    this.#use(key, -1);
  }

  /** Forgets every kept session (the manager closes). */
  close(): void {
    for (const [vm, e] of [...this.#ended]) this.#forget(vm, e);
  }

  #keep(s: SessionInfo, key: bigint): boolean {
    if (this.#max <= 0 || !this.#kills.alive(s.id) || !this.#kills.hold(s.id)) return false;
    const vm = s.vm.id;
    const stale = this.#ended.get(vm);
    if (stale) this.#forget(vm, stale);
    if (this.#ended.size >= this.#max) this.#evict();
    const unwatch = this.#kills.onExit(s.id, () => {
      const e = this.#ended.get(vm);
      if (e?.session === s) this.#forget(vm, e);
    });
    this.#ended.set(vm, { session: s, key, unwatch: unwatch ?? (() => {}) });
    this.#endedByPid.add(s.peer.pid);
    return true;
  }

  /** Forgets the oldest kept session of the peer process that holds the most. */
  #evict(): void {
    const [top] = this.#endedByPid.top();
    for (const [vm, e] of this.#ended) {
      if (e.session.peer.pid === top) {
        this.#forget(vm, e);
        return;
      }
    }
  }

  #forget(vm: string, e: Ended): void {
    this.#ended.delete(vm);
    this.#endedByPid.remove(e.session.peer.pid);
    e.unwatch();
    this.#kills.release(e.session.id);
    this.#use(e.key, -1);
  }

  #use(key: bigint, by: 1 | -1): void {
    const n = (this.#users.get(key) ?? 0) + by;
    if (n > 0) {
      this.#users.set(key, n);
      return;
    }
    this.#users.delete(key);
    this.#drop(key);
  }
}

/**
 * What the migration manager knows of a VM instance (vm-instance.ts) and must not forget when the
 * daemon restarts: that the orchestrator accepted its migration (it is moving the VM: later errors
 * fold into that), that it refused it under a policy version (not asked again under that version),
 * and the id of a migration still queued or running at the stop (asked again under the same id, so
 * that the orchestrator's Idempotency-Key recognizes it), with the payload a running one was sent
 * (sent again as it was: a key reused with another body is a 422 to an orchestrator that follows
 * the IETF idempotency-key draft, which reads as a refusal; no more payloads than the next start
 * reads back, snapshot). Kept per session key (migration-carry.ts), as the manager keeps it;
 * migration-state-file.ts writes it down and reads it back.
 *
 * After a restart, what was read back waits for its VM instance: a session that opens for the same
 * VM id from the same process — its pid, and that pid's start time read again, the process still
 * alive after the read, so that the pid named that process — claims it. What no session claims
 * within `keepMs` is forgotten. A process whose start time cannot be read matches nothing.
 */
import type { SessionInfo } from '../events/index.js';
import type { MigrationPayload } from './hook-types.js';
import { processStartTicks, type VmInstance } from './vm-instance.js';

/** One VM instance's migration state as it is kept across a restart. */
export interface RememberedMigration extends VmInstance {
  /** The id of the migration the orchestrator accepted. */
  accepted?: string;
  /** The migration the orchestrator refused, and the policy version that asked for it. */
  refused?: { policyVersion: string; migrationId: string };
  /** The id of a migration queued or running when the daemon stopped. */
  pending?: string;
  /** What that migration's hook was sent, if it ran: sent again as it was. */
  sent?: MigrationPayload;
}

/** A migration pending at the last stop, asked again. */
export interface ResumedMigration {
  migrationId: string;
  sent?: MigrationPayload;
}

/** How long what was read back at start waits for its VM's session, by default. */
export const UNCLAIMED_KEPT_MS = 5 * 60_000;

interface KeyState {
  /** null: the session's start time could not be read while its process lived; never kept. */
  instance: VmInstance | null;
  accepted?: string;
  refused?: { policyVersion: string; migrationId: string };
  /** A migration pending at the last stop, not asked again yet. */
  resumed?: ResumedMigration;
}

export interface MigrationMemoryOptions {
  /** The session's process has not exited (KillManager.alive), so its pid names that process. */
  alive: (sessionId: bigint) => boolean;
  /** When process `pid` started (default: /proc). */
  startTicks?: (pid: number) => number | null;
}

export class MigrationMemory {
  readonly #alive: (sessionId: bigint) => boolean;
  readonly #startTicks: (pid: number) => number | null;
  readonly #byKey = new Map<bigint, KeyState>();
  /** Read back at start, not claimed yet: by VM id. */
  readonly #unclaimed = new Map<string, RememberedMigration[]>();
  #unclaimedTimer: NodeJS.Timeout | null = null;
  /** What must survive a restart changed (set by whoever writes it down). */
  onChange: () => void = () => {};

  constructor(opts: MigrationMemoryOptions) {
    this.#alive = opts.alive;
    this.#startTicks = opts.startTicks ?? processStartTicks;
  }

  /** Read back and not claimed yet. */
  get unclaimed(): number {
    let n = 0;
    for (const list of this.#unclaimed.values()) n += list.length;
    return n;
  }

  accepted(key: bigint): boolean {
    return this.#byKey.get(key)?.accepted !== undefined;
  }

  /** The policy version under which the key's migration was refused. */
  refusedUnder(key: bigint): string | undefined {
    return this.#byKey.get(key)?.refused?.policyVersion;
  }

  /** The key's migration that was pending at the last stop, once. */
  takeResumed(key: bigint): ResumedMigration | undefined {
    const st = this.#byKey.get(key);
    const resumed = st?.resumed;
    if (st && resumed !== undefined) delete st.resumed;
    return resumed;
  }

  /** A migration of `key` (a key in use) was asked for: its instance is read now, once per key. */
  asked(key: bigint, s: SessionInfo): void {
    this.#state(key, s);
    this.onChange();
  }

  accept(key: bigint, s: SessionInfo, migrationId: string): void {
    this.#state(key, s).accepted = migrationId;
    this.onChange();
  }

  refuse(key: bigint, s: SessionInfo, policyVersion: string, migrationId: string): void {
    this.#state(key, s).refused = { policyVersion, migrationId };
    this.onChange();
  }

  /** No session uses the key any more. */
  forget(key: bigint): void {
    const st = this.#byKey.get(key);
    if (!st) return;
    this.#byKey.delete(key);
    if (st.instance) this.onChange();
  }

  /** What was kept before the restart; waits `keepMs` for its VM's session. */
  restore(entries: readonly RememberedMigration[], keepMs = UNCLAIMED_KEPT_MS): void {
    for (const e of entries) {
      const list = this.#unclaimed.get(e.vm);
      if (list) list.push(e);
      else this.#unclaimed.set(e.vm, [e]);
    }
    if (this.#unclaimedTimer) clearTimeout(this.#unclaimedTimer);
    this.#unclaimedTimer = setTimeout(() => {
      this.#unclaimedTimer = null;
      if (this.#unclaimed.size === 0) return;
      this.#unclaimed.clear();
      this.onChange();
    }, keepMs);
    this.#unclaimedTimer.unref();
  }

  /**
   * Session `s` opened under `key`: when no state is kept under the key yet and what was read back
   * names its VM instance, that becomes the key's. Reads the start time only when something of its
   * VM id waits.
   */
  opened(key: bigint, s: SessionInfo): void {
    const waiting = this.#unclaimed.get(s.vm.id);
    if (!waiting || this.#byKey.has(key)) return;
    const instance = this.#instanceOf(s);
    if (!instance) return;
    const at = waiting.findIndex((e) => e.pid === instance.pid && e.startTicks === instance.startTicks);
    if (at < 0) return;
    const [e] = waiting.splice(at, 1) as [RememberedMigration];
    if (waiting.length === 0) this.#unclaimed.delete(s.vm.id);
    const st: KeyState = { instance };
    if (e.accepted !== undefined) st.accepted = e.accepted;
    if (e.refused !== undefined) st.refused = { ...e.refused };
    if (e.pending !== undefined) st.resumed = { migrationId: e.pending, ...(e.sent ? { sent: e.sent } : {}) };
    this.#byKey.set(key, st);
    this.onChange();
  }

  /**
   * What to keep across a restart now: every key's state with its instance, `pending` naming the
   * migrations queued or running, and what was read back and not claimed yet. At most `maxSent`
   * entries keep what their hook was sent, as many as the next start reads back
   * (migration-state-file.ts): first the hooks running now, then the migrations queued with a
   * payload sent before the last stop, then those pending at the last stop and not asked again
   * yet, then what was read back and not claimed. The others lose their `pending` with their
   * `sent`: the orchestrator may have seen that id with that body, so the id is not asked again
   * with another body (a 422 to an orchestrator that compares them, read as a refusal); the VM's
   * next error asks under a new id, as for a migration the daemon does not remember.
   */
  snapshot(
    pending: Iterable<{ key: bigint; migrationId: string; sent: MigrationPayload | null; running: boolean }>,
    maxSent = Number.POSITIVE_INFINITY,
  ): RememberedMigration[] {
    const queued = new Map<bigint, ResumedMigration & { rank: number }>();
    for (const p of pending)
      queued.set(p.key, {
        migrationId: p.migrationId,
        ...(p.sent ? { sent: p.sent } : {}),
        rank: p.running ? 0 : 1,
      });
    const out: Array<{ e: RememberedMigration; rank: number }> = [];
    for (const [key, st] of this.#byKey) {
      if (!st.instance) continue;
      const e: RememberedMigration = { ...st.instance };
      if (st.accepted !== undefined) e.accepted = st.accepted;
      if (st.refused !== undefined) e.refused = { ...st.refused };
      const resumed = queued.get(key) ?? (st.resumed && { ...st.resumed, rank: 2 });
      if (resumed !== undefined) e.pending = resumed.migrationId;
      if (resumed?.sent !== undefined) e.sent = resumed.sent;
      if (e.accepted !== undefined || e.refused !== undefined || e.pending !== undefined)
        out.push({ e, rank: resumed?.rank ?? 0 });
    }
    for (const list of this.#unclaimed.values()) for (const e of list) out.push({ e: { ...e }, rank: 3 });
    const withSent = out.filter((x) => x.e.sent !== undefined).sort((a, b) => a.rank - b.rank);
    for (const { e } of withSent.slice(maxSent)) {
      delete e.sent;
      delete e.pending;
    }
    return out
      .map((x) => x.e)
      .filter((e) => e.accepted !== undefined || e.refused !== undefined || e.pending !== undefined);
  }

  close(): void {
    if (this.#unclaimedTimer) clearTimeout(this.#unclaimedTimer);
    this.#unclaimedTimer = null;
  }

  #state(key: bigint, s: SessionInfo): KeyState {
    let st = this.#byKey.get(key);
    if (!st) {
      st = { instance: this.#instanceOf(s) };
      this.#byKey.set(key, st);
    }
    return st;
  }

  /** The session's instance: its pid's start time, read while its process is known to live. */
  #instanceOf(s: SessionInfo): VmInstance | null {
    const startTicks = this.#startTicks(s.peer.pid);
    // Alive after the read: the pid named this session's process when it was read.
    if (startTicks === null || !this.#alive(s.id)) return null;
    return { vm: s.vm.id, pid: s.peer.pid, startTicks };
  }
}

/**
 * Migration requests, off the verdict path. One migration per plugin session is in flight:
 * triggers of that session while it is queued or running fold into it (100 triggers → 1 hook
 * call). A trigger of the VM's next session (the VM restarted here) is a migration of its own,
 * for that session's VMM; it waits until the earlier session's hook has answered, so one hook
 * per VM runs at a time. At most `maxInFlight` hooks run at once across the host; up to
 * `maxQueued` more wait in FIFO order; past that a trigger is dropped and counted — unless another
 * peer (the plugin's process) holds more of the queue than the trigger's peer: then that peer's
 * newest queued migration ends `dropped` and the trigger takes its place, so that one process
 * with many sessions cannot lock every other VM out of the hooks. When a
 * migration is refused, fails or times out, the rule's onFailure runs: a kill of the session's
 * VMM through the kill manager (which holds its pidfd meanwhile), or nothing.
 *
 * A refusal is final for the orchestrator (QEMU will not move a VM with poisoned memory): the VM is
 * not asked for again until its plugin session or the policy version changes. A host-scope rule
 * ("evacuate this host") asks for every VM with a live session, each under the same rules. A session
 * that follows one of the same VM from the same live process (a plugin that reconnected) is the same
 * VM: all of this is kept per key shared by such sessions (migration-carry.ts), not per session, and
 * kept across a daemon restart for the same VM instance (migration-memory.ts).
 */
import { randomUUID } from 'node:crypto';
import type { SessionInfo, SessionOutcome } from '../events/index.js';
import type { Decision, PolicyEvent } from '../policies/index.js';
import type { HookResult, MigrationOutcome, MigrationPayload } from './hook-types.js';
import type { KillReason } from './kill-manager.js';
import { MAX_ENDED_KEPT, SessionCarry } from './migration-carry.js';
import { MigrationMemory, type RememberedMigration } from './migration-memory.js';
import { migrationPayload, runHook } from './migration-payload.js';
import type { MigrationManagerOptions, MigrationRecord, MigrationResult } from './migration-types.js';
import { PeerQueue } from './peer-queue.js';

type MigrateDecision = Decision & { action: 'migrate' };

interface Migration {
  record: MigrationRecord;
  session: SessionInfo;
  /** The key of the sessions whose triggers fold into it and whose answer it is (SessionCarry). */
  key: bigint;
  decision: MigrateDecision;
  event: PolicyEvent;
  held: boolean;
  /** Aborts the hook when the manager closes; set while it runs. */
  stop: AbortController | null;
  /** Reported: a hook answer that comes after (at close) is not looked at. */
  finished: boolean;
  /** What the hook is sent, once built: one sent before a restart is sent again as it was. */
  payload: MigrationPayload | null;
}

const KILL_REASON: Readonly<Record<Exclude<MigrationOutcome, 'accepted'>, KillReason>> = {
  refused: 'migration_refused',
  failed: 'migration_failed',
  timed_out: 'migration_timed_out',
};

export class MigrationManager {
  readonly #opts: MigrationManagerOptions;
  readonly #now: () => number;
  /** Each VM's migrations queued or running, one per session key, oldest first. */
  readonly #byVm = new Map<string, Migration[]>();
  /** VMs whose hook is running: their next migration waits. */
  readonly #busy = new Set<string>();
  /** Waiting for a slot; a full one is shared fairly between peer processes (`session.peer.pid`). */
  readonly #queue = new PeerQueue<Migration>();
  #pending = 0;
  /**
   * Per session key: whether the VM's migration was accepted (the orchestrator is already moving it,
   * so later errors of those sessions are folded into it, not re-requested) or refused, and under
   * which policy version (not asked again while both hold); kept across a restart (migration-memory.ts).
   * Forgotten when no session uses the key (the VM left this host, or restarted here); never set for
   * a key no session uses.
   */
  readonly memory: MigrationMemory;
  readonly #carry: SessionCarry;
  /** Live plugin sessions, for host-scope migrations. */
  readonly #live = new Map<bigint, SessionInfo>();
  #running = 0;
  #closed = false;
  /** Bumped by whatever can change what an evacuation asks for: sessions, migrations, answers. */
  #changes = 0;
  /** Host-scope rules (policy version, rule) that evacuated while `#changes` was `#evacuatedAt`. */
  readonly #evacuated = new Set<string>();
  #evacuatedAt = -1;
  readonly stats = {
    started: 0,
    coalesced: 0,
    dropped: 0,
    refusedAlready: 0,
    running: 0,
    queued: 0,
    evacuationsFolded: 0,
  };

  constructor(opts: MigrationManagerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.memory = new MigrationMemory({ alive: (id) => opts.kills.alive(id), ...opts.memory });
    this.#carry = new SessionCarry(opts.kills, opts.maxEndedKept ?? MAX_ENDED_KEPT, (key) =>
      this.memory.forget(key),
    );
  }

  /** Ended sessions kept for their VM's next session. */
  get endedKept(): number {
    return this.#carry.kept;
  }

  /** Migrations queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /** Asks for a migration of the session's VM; never blocks, never throws on hook trouble. */
  trigger(
    session: SessionInfo,
    decision: MigrateDecision,
    event: PolicyEvent,
    seq: number | null = null,
  ): 'started' | 'queued' | 'coalesced' | 'accepted-already' | 'refused-already' | 'dropped' {
    if (this.#closed) return 'dropped';
    const vm = session.vm.id;
    const key = this.#carry.keyOf(session);
    if (this.memory.accepted(key)) {
      this.stats.coalesced++;
      return 'accepted-already';
    }
    if (this.memory.refusedUnder(key) === decision.policyVersion) {
      this.stats.refusedAlready++;
      return 'refused-already';
    }
    const current = this.#byVm.get(vm)?.find((x) => x.key === key);
    if (current) {
      current.record.coalesced++;
      this.stats.coalesced++;
      return 'coalesced';
    }
    const runNow = this.#running < this.#opts.maxInFlight && !this.#busy.has(vm);
    if (!runNow && this.#queue.length >= this.#opts.maxQueued && !this.#makeRoomFor(session)) {
      this.stats.dropped++;
      this.#opts.onDropped?.(vm, decision.hook);
      return 'dropped';
    }
    // One pending when the daemon last stopped is asked again under its id, with what it was sent.
    const resumed = this.memory.takeResumed(key);
    const m: Migration = {
      record: {
        migrationId: resumed?.migrationId ?? randomUUID(),
        vm,
        sessionId: session.id,
        seq,
        hook: decision.hook,
        rule: decision.rule,
        policyVersion: decision.policyVersion,
        queuedAtMs: this.#now(),
        coalesced: 0,
      },
      session,
      key,
      decision,
      event,
      held: this.#opts.kills.hold(session.id),
      stop: null,
      finished: false,
      payload: resumed?.sent ?? null,
    };
    const ofVm = this.#byVm.get(vm);
    if (ofVm) ofVm.push(m);
    else this.#byVm.set(vm, [m]);
    this.#pending++;
    this.#changes++;
    this.stats.started++;
    if (this.#carry.inUse(key)) this.memory.asked(key, session);
    this.#opts.onStarted?.(m.record);
    if (runNow) {
      this.#run(m);
      return 'started';
    }
    this.#enqueue(m);
    return 'queued';
  }

  #enqueue(m: Migration): void {
    this.#queue.push(m);
    this.stats.queued = this.#queue.length;
  }

  #dequeue(i: number): Migration {
    const m = this.#queue.take(i);
    this.stats.queued = this.#queue.length;
    return m;
  }

  /**
   * A full queue, and a trigger of `session`: the peer holding the most of the queue gives up its
   * newest queued migration when it holds at least two more than the trigger's peer. Whether room
   * was made.
   */
  #makeRoomFor(session: SessionInfo): boolean {
    const i = this.#queue.victimFor(session.peer.pid);
    if (i < 0) return false;
    const out = this.#dequeue(i);
    this.stats.dropped++;
    this.#finish(out, {
      outcome: 'dropped',
      detail: 'the hook queue is full: dropped for a VM of another process',
      attempts: 0,
    });
    return true;
  }

  /**
   * A host-scope decision: every VM with a live session is asked for, each as if its own rule had
   * fired (coalesced, accepted or refused already, bounded by the queue). The same rule asking
   * again before any session, migration or answer has changed would ask for nothing new, so it is
   * folded without the pass: a storm's every error of a host-scope rule once cost a pass over
   * every session, and with a full queue a drop reported for each VM not in it.
   */
  evacuate(decision: MigrateDecision, event: PolicyEvent, from: SessionInfo, seq: number | null): number {
    const key = `${decision.policyVersion}\0${decision.rule}`;
    if (this.#evacuatedAt === this.#changes && this.#evacuated.has(key)) {
      this.stats.evacuationsFolded++; // host-scope triggers that asked for nothing
      return 0;
    }
    let asked = 0;
    for (const s of this.#live.values()) {
      const r = this.trigger(s, decision, event, s.id === from.id ? seq : null);
      if (r === 'started' || r === 'queued') asked++;
    }
    // Rules of older policy versions are forgotten with the first change.
    if (this.#evacuatedAt !== this.#changes) {
      this.#evacuated.clear();
      this.#evacuatedAt = this.#changes;
    }
    this.#evacuated.add(key);
    return asked;
  }

  sessionOpened(session: SessionInfo): void {
    if (this.#live.has(session.id)) return;
    this.#changes++;
    this.#live.set(session.id, session);
    this.#carry.opened(session);
    this.memory.opened(this.#carry.keyOf(session), session);
  }

  /**
   * The session ended: what was asked for it stands for the VM's next session only if that comes
   * from the same live process, and the plugin did not say the VM is exiting. Call before the kill
   * manager hears of it: keeping the session for its successor holds its pidfd.
   */
  sessionClosed(session: SessionInfo, outcome: SessionOutcome = 'disconnect'): void {
    if (!this.#live.delete(session.id)) return;
    this.#changes++;
    this.#carry.closed(session, outcome === 'vm_exiting');
  }

  /**
   * Stops starting hooks and ends every migration now, before the record closes: queued ones are
   * dropped, running hooks are stopped (an exec hook's processes killed, an HTTP request
   * aborted); each is reported `failed`, detail `daemon stopping`. onFailure does not run.
   */
  close(): void {
    this.#closed = true;
    this.memory.close();
    this.#carry.close();
    while (this.#queue.length > 0)
      this.#finish(this.#dequeue(0), { outcome: 'failed', detail: 'daemon stopping', attempts: 0 });
    for (const running of [...this.#byVm.values()].flat()) {
      running.stop?.abort();
      this.#finish(running, { outcome: 'failed', detail: 'daemon stopping', attempts: 1 });
    }
  }

  /**
   * What must survive a restart: the accepted and refused VM instances, and the migrations queued or
   * running with their ids. Taken before `close`, which ends them.
   */
  remembered(): RememberedMigration[] {
    const pending = [...this.#byVm.values()]
      .flat()
      .map((m) => ({ key: m.key, migrationId: m.record.migrationId, sent: m.payload, running: !!m.stop }));
    return this.memory.snapshot(pending, this.#opts.maxInFlight);
  }

  #run(m: Migration): void {
    this.#running++;
    this.stats.running = this.#running;
    this.#busy.add(m.record.vm);
    m.stop = new AbortController();
    const hook = this.#opts.hooks.get(m.record.hook);
    const keep = (p: MigrationPayload) => {
      m.payload = p;
      this.memory.onChange(); // what is sent is kept until answered
      return p;
    };
    const built = m.payload ?? migrationPayload(m, this.#opts.host, this.#opts.pages);
    const result: Promise<HookResult> = hook
      ? runHook(hook, built instanceof Promise ? built.then(keep) : keep(built), m.stop.signal).catch(
          (err: Error) => ({ outcome: 'failed', detail: err.message, attempts: 1 }),
        )
      : Promise.resolve({
          outcome: 'failed',
          detail: `no hook named '${m.record.hook}' is configured`,
          attempts: 0,
        });
    void result.then((r) => {
      this.#running--;
      this.stats.running = this.#running;
      this.#busy.delete(m.record.vm);
      if (!m.finished) this.#finish(m, r);
      this.#next();
    });
  }

  /** Starts queued migrations, first come first served, while slots are free: none of a busy VM. */
  #next(): void {
    while (!this.#closed && this.#running < this.#opts.maxInFlight) {
      const i = this.#queue.findIndex((q) => !this.#busy.has(q.record.vm));
      if (i < 0) break;
      this.#run(this.#dequeue(i));
    }
  }

  /** Reports the migration's end; the rule's onFailure runs when its hook ran and did not accept. */
  #finish(m: Migration, r: Pick<MigrationResult, 'outcome' | 'detail' | 'attempts'>): void {
    m.finished = true;
    this.#changes++;
    this.#pending--;
    this.memory.onChange(); // no longer pending
    const ofVm = this.#byVm.get(m.record.vm) ?? [];
    const at = ofVm.indexOf(m);
    if (at >= 0) ofVm.splice(at, 1);
    if (ofVm.length === 0) this.#byVm.delete(m.record.vm);
    // An answer no session uses stands for nothing: the VM's next session asks again.
    const live = this.#carry.inUse(m.key);
    let onFailure: MigrationResult['onFailure'] = null;
    if (r.outcome === 'accepted') {
      if (live) this.memory.accept(m.key, m.session, m.record.migrationId);
    } else if (r.outcome !== 'dropped') {
      if (r.outcome === 'refused' && live)
        this.memory.refuse(m.key, m.session, m.record.policyVersion, m.record.migrationId);
      const f = m.decision.onFailure;
      onFailure = f.action;
      if (f.action === 'kill' && !this.#closed) {
        this.#opts.kills.request({
          session: m.session,
          seq: m.record.seq,
          rule: m.record.rule,
          policyVersion: m.record.policyVersion,
          graceMs: f.graceMs,
          reason: KILL_REASON[r.outcome],
        });
      }
    }
    if (m.held) this.#opts.kills.release(m.session.id);
    this.#opts.onFinished?.({ ...m.record, ...r, finishedAtMs: this.#now(), onFailure });
  }
}

/**
 * Builds the control socket's `ControlContext` from the daemon's live parts: sessions from the
 * plugin server, counts from the pipeline, the policy holder, the store. Kept here so the
 * composition root only hands over references.
 */
import type { SessionInfo } from '../events/index.js';
import {
  type EventQuery,
  type EventStore,
  type FollowQuery,
  type PoisonCursor,
  type PolicyText,
  type StoreHealth,
  type StoreReader,
  type StoreTotals,
  WhyBuilder,
  type WhyQuery,
} from '../store/index.js';
import {
  type ControlContext,
  type ReloadResult,
  type SessionSummary,
  STATUS_MAX_SESSIONS,
  type StatusResult,
} from './commands.js';
import { ControlError } from './errors.js';

export interface ServiceParts {
  version: string;
  /** When the daemon became ready (ms since the epoch); 0 before. */
  startedAtMs: () => number;
  sessions: () => readonly SessionInfo[];
  pipeline: { readonly decided: number; readonly replays: number };
  policy: {
    readonly current: { readonly version: string };
    /** The policy in force as text, for `seawall why` to compile beside the store. */
    readonly currentText?: PolicyText | null;
    readonly reloads: number;
    readonly failedReloads: number;
    readonly lastReloadAtMs: number;
  };
  store: EventStore | null;
  /** Runs the reads off the event loop; without one they run on the store's own connection. */
  reader?: Pick<
    StoreReader,
    'eventsEncoded' | 'followEncoded' | 'vmsEncoded' | 'poisonedPagesEncoded' | 'totals' | 'whyEncoded'
  > | null;
  /** Whether answered events are reaching the store (the write-ahead layer's view). */
  storeHealth?: () => StoreHealth | null;
  reload: () => Promise<ReloadResult>;
  now?: () => number;
}

function summary(s: SessionInfo): SessionSummary {
  return {
    id: s.id.toString(),
    vm: s.vm.id,
    vmmPid: s.vmmPid,
    vcpus: s.vcpuCount,
    abi: s.host.abi,
    openedAtMs: s.openedAtMs,
  };
}

/** The first `n` sessions opened (session ids rise with each HELLO), oldest first. */
function firstOpened(sessions: readonly SessionInfo[], n: number): SessionInfo[] {
  return [...sessions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, n);
}

function needStore(store: EventStore | null): EventStore {
  if (store === null || store.closed)
    throw new ControlError('SEAWALL_CONTROL_FAILED', 'the event store is not open');
  return store;
}

const HEALTHY: StoreHealth = {
  healthy: true,
  error: null,
  sinceMs: null,
  heldRows: 0,
  droppedRows: 0,
  heldUpdates: 0,
  droppedUpdates: 0,
};
const NO_TOTALS: StoreTotals = {
  events: 0,
  replays: 0,
  vms: 0,
  poisonedPages: 0,
  actions: 0,
  byAction: {},
  oldestMs: null,
  newestMs: null,
  bytes: 0,
};

export function serviceControlContext(p: ServiceParts): ControlContext {
  const now = p.now ?? Date.now;
  // The reads: on the reader thread when there is one, else on the store's connection.
  const reads = {
    totals: (s: EventStore) => (p.reader ? p.reader.totals() : s.queries.totals()),
    vms: (s: EventStore, connected: string[], limit?: number, after?: string) =>
      p.reader ? p.reader.vmsEncoded(connected, limit, after) : s.queries.vms(connected, limit, after),
    events: (s: EventStore, q: EventQuery) => (p.reader ? p.reader.eventsEncoded(q) : s.queries.events(q)),
    // Without a reader (no write-ahead layer) every row answered is committed when it is answered.
    follow: (s: EventStore, q: FollowQuery) => (p.reader ? p.reader.followEncoded(q) : s.queries.follow(q)),
    poison: (s: EventStore, vm?: string, limit?: number, after?: PoisonCursor) =>
      p.reader ? p.reader.poisonedPagesEncoded(vm, limit, after) : s.queries.poisonedPages(vm, limit, after),
    why: (s: EventStore, q: WhyQuery) => {
      const current = p.policy.currentText ?? null;
      return p.reader ? p.reader.whyEncoded(q, current) : new WhyBuilder(s.queries).build(q, current);
    },
  };
  return {
    async status(args = {}): Promise<StatusResult> {
      const started = p.startedAtMs();
      let store: StatusResult['store'] = null;
      if (p.store && !p.store.closed) {
        const health = p.storeHealth?.() ?? HEALTHY;
        let totals = NO_TOTALS;
        try {
          totals = await reads.totals(p.store);
        } catch {
          // status still answers, with the store's health; the failure was reported as a `query` error
        }
        store = { path: p.store.path, ...totals, health };
      }
      // Made and encoded on the event loop: a bounded list, without labels (docs/security.md); for
      // one VM its sessions (one, two while a reconnect replaces the old) with their labels.
      const live = p.sessions();
      const { vm } = args;
      const listed =
        vm === undefined
          ? firstOpened(live, STATUS_MAX_SESSIONS).map(summary)
          : firstOpened(
              live.filter((s) => s.vm.id === vm),
              STATUS_MAX_SESSIONS,
            ).map((s) => ({ ...summary(s), labels: { ...s.vm.labels } }));
      return {
        version: p.version,
        pid: process.pid,
        startedAtMs: started,
        uptimeMs: started === 0 ? 0 : now() - started,
        policy: {
          version: p.policy.current.version,
          reloads: p.policy.reloads,
          failedReloads: p.policy.failedReloads,
          lastReloadAtMs: p.policy.lastReloadAtMs === 0 ? null : p.policy.lastReloadAtMs,
        },
        sessionCount: live.length,
        sessions: listed,
        sessionsOmitted: vm === undefined ? live.length - listed.length : 0,
        events: { decided: p.pipeline.decided, replays: p.pipeline.replays },
        store,
      };
    },
    // The store's VMs and the connected ones, made and encoded where the reads run.
    vms: (q) =>
      reads.vms(needStore(p.store), [...new Set(p.sessions().map((s) => s.vm.id))], q.limit, q.after),
    events: (q) => reads.events(needStore(p.store), q),
    follow: (q) => reads.follow(needStore(p.store), q),
    poison: (q) => reads.poison(needStore(p.store), q.vm, q.limit, q.after),
    why: (q) => reads.why(needStore(p.store), q),
    reload: () => p.reload(),
  };
}

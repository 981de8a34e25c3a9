/**
 * Builds the control socket's `ControlContext` from the daemon's live parts: sessions from the
 * plugin server, counts from the pipeline, the policy holder, the store. Kept here so the
 * composition root only hands over references.
 */
import type { SessionInfo } from '../events/index.js';
import type { EventStore } from '../store/index.js';
import type { ControlContext, ReloadResult, SessionSummary, StatusResult, VmView } from './commands.js';
import { ControlError } from './errors.js';

export interface ServiceParts {
  version: string;
  /** When the daemon became ready (ms since the epoch); 0 before. */
  startedAtMs: () => number;
  sessions: () => readonly SessionInfo[];
  pipeline: { readonly decided: number; readonly replays: number };
  policy: {
    readonly current: { readonly version: string };
    readonly reloads: number;
    readonly failedReloads: number;
    readonly lastReloadAtMs: number;
  };
  store: EventStore | null;
  reload: () => Promise<ReloadResult>;
  now?: () => number;
}

function summary(s: SessionInfo): SessionSummary {
  return {
    id: s.id.toString(),
    vm: s.vm.id,
    labels: { ...s.vm.labels },
    vmmPid: s.vmmPid,
    vcpus: s.vcpuCount,
    abi: s.host.abi,
    openedAtMs: s.openedAtMs,
  };
}

function needStore(store: EventStore | null): EventStore {
  if (store === null || store.closed)
    throw new ControlError('SEAWALL_CONTROL_FAILED', 'the event store is not open');
  return store;
}

export function serviceControlContext(p: ServiceParts): ControlContext {
  const now = p.now ?? Date.now;
  return {
    status(): StatusResult {
      const started = p.startedAtMs();
      let store: StatusResult['store'] = null;
      if (p.store && !p.store.closed) {
        try {
          store = { path: p.store.path, ...p.store.queries.totals() };
        } catch {
          store = null; // status still answers; the failure was reported as a store `query` error
        }
      }
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
        sessions: p.sessions().map(summary),
        events: { decided: p.pipeline.decided, replays: p.pipeline.replays },
        store,
      };
    },
    vms(): VmView[] {
      const live = new Set(p.sessions().map((s) => s.vm.id));
      const out: VmView[] = needStore(p.store)
        .queries.vms()
        .map((v) => ({ ...v, connected: live.delete(v.vm) }));
      // Connected VMs with no stored event yet.
      for (const vm of live) {
        out.push({
          vm,
          events: 0,
          firstSeenMs: null,
          lastSeenMs: null,
          poisonedPages: 0,
          lastAction: null,
          connected: true,
        });
      }
      return out;
    },
    events: (q) => needStore(p.store).queries.events(q),
    poison: (q) => needStore(p.store).queries.poisonedPages(q.vm),
    reload: () => p.reload(),
  };
}

/**
 * How the event store's troubles reach the operator. Every failed operation is counted
 * (`seawall_store_errors_total{op}`) but logged at most a few lines a minute per op — a full disk
 * fails every batch. A fault's beginning and its end are one line each, always, and move the
 * `seawall_store_healthy` / `seawall_store_held_events` gauges. The queue itself — backlog, waits,
 * what is held and what was lost — is read at each scrape (`storeLoadOf`).
 */
import type { SeawallMetrics, StoreLoad } from '../metrics/index.js';
import type { StoreHealth, StoreOp, WriteAhead } from '../store/index.js';
import { JournalField as F } from '../systemd/index.js';
import { type DaemonLog, Priority } from './log.js';

export interface StoreReporting {
  onError: (op: StoreOp, err: unknown) => void;
  onHealth: (h: StoreHealth) => void;
  /** VMs the write-ahead bound stopped reading (their events are the most of its backlog). */
  onHold: (vms: readonly string[]) => void;
}

/** VMs named in one hold line; the rest are counted. */
const HOLD_NAMED = 8;

/** What /metrics reads of the write-ahead queue at each scrape (metrics/store-load.ts). */
export function storeLoadOf(
  ahead: Pick<WriteAhead, 'pending' | 'backpressureMs' | 'pressures' | 'health'>,
): StoreLoad {
  const h = ahead.health;
  return {
    pendingEvents: ahead.pending,
    heldEvents: h.heldRows,
    backpressureMs: ahead.backpressureMs,
    heldUpdates: h.heldUpdates,
    lostEvents: h.droppedRows,
    lostUpdates: h.droppedUpdates,
    sessionHolds: ahead.pressures,
  };
}

export function storeReporting(metrics: SeawallMetrics | null, log: DaemonLog): StoreReporting {
  return {
    onHold(vms) {
      if (vms.length === 0) return;
      const named = vms.slice(0, HOLD_NAMED).join(', ');
      const more = vms.length > HOLD_NAMED ? ` and ${vms.length - HOLD_NAMED} more` : '';
      log.notice('store:hold', {
        message: `not reading ${vms.length === 1 ? 'VM' : 'VMs'} ${named}${more} until the event store catches up: their events are the most of those written ahead and not yet stored; other VMs are answered meanwhile`,
        priority: Priority.WARNING,
        fields: { [F.REASON]: 'store_hold', ...(vms.length === 1 ? { [F.VM]: vms[0] as string } : {}) },
      });
    },
    onError(op, err) {
      metrics?.storeError(op);
      log.notice(`store:${op}`, {
        message: `event store ${op} failed: ${(err as Error).message}`,
        priority: Priority.ERR,
        fields: { [F.REASON]: `store_${op}` },
      });
    },
    onHealth(h) {
      metrics?.storeHealth(h.healthy, h.heldRows);
      log.log(
        h.healthy
          ? {
              message: 'event store recovered: answered events are stored again, the held ones included',
              priority: Priority.NOTICE,
              fields: { [F.REASON]: 'store_recovered' },
            }
          : {
              message: `event store faulty (${h.error}): answered events are held in memory and retried every second`,
              priority: Priority.ERR,
              fields: { [F.REASON]: 'store_faulty' },
            },
      );
    },
  };
}

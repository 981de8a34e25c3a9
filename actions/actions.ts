/**
 * The action layer assembled from its config section: kill manager, migration manager, poisoned
 * page tracker and the sink that connects them to the event bus. The composition root (service.ts)
 * adds `sink` to the bus and passes callbacks that reach the store, metrics and journald.
 */
import { hostname } from 'node:os';
import type { Sink } from '../events/index.js';
import { actionSink } from './action-sink.js';
import { type ActionsConfig, buildHooks } from './config-schema.js';
import type { HookRunner } from './hook-types.js';
import { KillManager, type KillManagerOptions } from './kill-manager.js';
import { MigrationManager } from './migration-manager.js';
import type { MigrationManagerOptions } from './migration-types.js';
import {
  PoisonedPages,
  type PoisonedPagesProvider,
  type StoredPages,
  WithStoredPages,
} from './poisoned-pages.js';

export interface ActionCallbacks {
  kill?: Pick<KillManagerOptions, 'onStarted' | 'onFinished' | 'onPidMismatch' | 'onPidfdError'>;
  migration?: Pick<MigrationManagerOptions, 'onStarted' | 'onFinished' | 'onDropped'>;
  /** Supplies a VM's poisoned pages instead of the in-memory tracker (e.g. the event store). */
  pages?: PoisonedPagesProvider;
  /** The event store's pages, added to the in-memory tracker's in each payload. */
  storedPages?: StoredPages;
  /** Hook runners to use instead of building them from the config (tests). */
  hooks?: ReadonlyMap<string, HookRunner>;
}

export interface Actions {
  kills: KillManager;
  migrations: MigrationManager;
  /** The in-memory tracker; null when `callbacks.pages` supplies pages. */
  pages: PoisonedPages | null;
  sink: Sink;
  /** Stop order: no new hooks, then kills (timers, pidfds). */
  close(): void;
}

export function createActions(cfg: ActionsConfig, cb: ActionCallbacks = {}): Actions {
  const kills = new KillManager({ enforce: cfg.kill.enforce, ...cb.kill });
  const pages = cb.pages
    ? null
    : new PoisonedPages({ perVm: cfg.poisonedPagesPerVm, vms: cfg.poisonedPagesVms });
  const memory = pages as PoisonedPages;
  const stored = cb.storedPages;
  const migrations = new MigrationManager({
    hooks: cb.hooks ?? buildHooks(cfg),
    kills,
    pages: cb.pages ?? (stored ? new WithStoredPages(memory, stored, cfg.poisonedPagesPerVm) : memory),
    host: cfg.hostName ?? hostname(),
    maxInFlight: cfg.maxHooksInFlight,
    maxQueued: cfg.maxHooksQueued,
    ...cb.migration,
  });
  return {
    kills,
    migrations,
    pages,
    sink: actionSink({ kills, migrations, pages }),
    close() {
      migrations.close();
      kills.close();
    },
  };
}

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
import { MAX_ENDED_KEPT } from './migration-carry.js';
import { MigrationManager } from './migration-manager.js';
import { loadMigrationState, MigrationStateWriter } from './migration-state-file.js';
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
  /**
   * Reads back what the migration manager kept at `path` before the daemon last stopped, and keeps
   * it there from now on (migration-state-file.ts); `liveSessions`: the plugin sessions the daemon
   * takes at most. `warn` hears of a file that cannot be used or written.
   */
  remember(path: string, warn: (message: string) => void, liveSessions: number): void;
  /**
   * Stop order: no new hooks, then kills (timers, pidfds); resolves once what the migration
   * manager keeps across a restart is written, as it was before the migrations were ended.
   */
  close(): Promise<void>;
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
  let writer: MigrationStateWriter | null = null;
  let closing: Promise<void> | null = null;
  let kept = 0;
  // At most one entry per session key in use, or read back: what the next start reads in full.
  const remembered = () => migrations.remembered().slice(0, kept);
  return {
    kills,
    migrations,
    pages,
    sink: actionSink({ kills, migrations, pages }),
    remember(path, warn, liveSessions) {
      kept = liveSessions + MAX_ENDED_KEPT;
      const sent = { count: cfg.maxHooksInFlight, pages: cfg.poisonedPagesPerVm };
      const loaded = loadMigrationState(path, kept, sent);
      if (loaded.warning) warn(loaded.warning);
      migrations.memory.restore(loaded.entries);
      const w = new MigrationStateWriter(path, remembered, warn);
      writer = w;
      migrations.memory.onChange = () => w.changed();
      // What was dropped of it is dropped from the file too.
      if (loaded.warning || loaded.stale > 0) w.changed();
    },
    close() {
      // Once: a second close would write what is left after the first over what it wrote.
      closing ??= (async () => {
        const last = writer ? remembered() : [];
        migrations.close();
        kills.close();
        await writer?.close(last);
      })();
      return closing;
    },
  };
}

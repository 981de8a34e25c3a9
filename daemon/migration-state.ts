/**
 * Where the migration manager keeps what must survive a restart (actions/migration-state-file.ts):
 * `migrations.json` in the state directory, once `ensureSafeDir` has vouched for it. Only when a
 * hook is configured: without one no migration is ever asked for. A state directory that cannot be
 * used is told as a warning; the daemon then runs without that memory, as before it had one.
 *
 * One daemon per file: a daemon takes `migrations.json.lock` (flock(2), as the store takes its
 * own; StoreLock) before it reads the file, and holds it until its last write. The store's lock
 * keeps a second daemon off a state directory only when both keep the store; under `--no-store`
 * two daemons would each set aside, read and write over what the other wrote. A daemon that
 * cannot have the lock is told so and runs without the memory; it still starts.
 */
import { join } from 'node:path';
import { type Actions, MIGRATION_STATE_FILE } from '../actions/index.js';
import { StoreLock } from '../store/index.js';
import type { DaemonConfig } from './config.js';
import { type DaemonLog, Priority } from './log.js';
import { ensureSafeDir } from './paths.js';

/** What the daemon holds while it remembers migrations: released once `actions` has closed. */
export interface MigrationStateHold {
  release(): void;
}

export function rememberMigrations(
  config: DaemonConfig,
  actions: Actions,
  log: DaemonLog,
): MigrationStateHold | null {
  if (Object.keys(config.actions.hooks).length === 0) return null;
  const warn = (message: string) =>
    log.log({ message: `migration state: ${message}`, priority: Priority.WARNING });
  const without = 'migrations asked before a restart will be asked again under new ids';
  const path = join(config.stateDir, MIGRATION_STATE_FILE);
  let lock: StoreLock;
  try {
    ensureSafeDir(config.stateDir, 0o700);
    lock = StoreLock.take(path);
  } catch (err) {
    warn(`${(err as Error).message}; this daemon runs without migration memory: ${without}`);
    return null;
  }
  actions.remember(path, warn, config.limits.maxSessions);
  return lock;
}

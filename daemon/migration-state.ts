/**
 * Where the migration manager keeps what must survive a restart (actions/migration-state-file.ts):
 * `migrations.json` in the state directory, once `ensureSafeDir` has vouched for it. Only when a
 * hook is configured: without one no migration is ever asked for. A state directory that cannot be
 * used is told as a warning; the daemon then runs without that memory, as before it had one.
 */
import { join } from 'node:path';
import { type Actions, MIGRATION_STATE_FILE } from '../actions/index.js';
import type { DaemonConfig } from './config.js';
import { type DaemonLog, Priority } from './log.js';
import { ensureSafeDir } from './paths.js';

export function rememberMigrations(config: DaemonConfig, actions: Actions, log: DaemonLog): void {
  if (Object.keys(config.actions.hooks).length === 0) return;
  const warn = (message: string) =>
    log.log({ message: `migration state: ${message}`, priority: Priority.WARNING });
  try {
    ensureSafeDir(config.stateDir, 0o700);
  } catch (err) {
    warn(`${(err as Error).message}; migrations asked before a restart will be asked again under new ids`);
    return;
  }
  actions.remember(join(config.stateDir, MIGRATION_STATE_FILE), warn, config.limits.maxSessions);
}

/** What the migration manager is given and what it reports (migration-manager.ts). */
import type { HookResult, HookRunner, MigrationOutcome } from './hook-types.js';
import type { KillManager } from './kill-manager.js';
import type { MigrationMemoryOptions } from './migration-memory.js';
import type { PoisonedPagesProvider } from './poisoned-pages.js';

export interface MigrationRecord {
  migrationId: string;
  vm: string;
  sessionId: bigint;
  /** The event whose decision asked for this migration. */
  seq: number | null;
  hook: string;
  rule: string;
  policyVersion: string;
  queuedAtMs: number;
  /** Triggers folded into this migration while it was queued or running. */
  coalesced: number;
}

export interface MigrationResult extends MigrationRecord, Omit<HookResult, 'outcome'> {
  /** The hook's outcome, or `dropped`: pushed out of a full queue, the hook never ran. */
  outcome: MigrationOutcome | 'dropped';
  finishedAtMs: number;
  /** What onFailure did: null when accepted. */
  onFailure: 'kill' | 'none' | null;
}

export interface MigrationManagerOptions {
  hooks: ReadonlyMap<string, HookRunner>;
  kills: KillManager;
  pages: PoisonedPagesProvider;
  host: string;
  maxInFlight: number;
  maxQueued: number;
  onStarted?: (m: MigrationRecord) => void;
  onFinished?: (m: MigrationResult) => void;
  /** A trigger dropped because the queue was full (one pushed out of it ends `dropped` instead). */
  onDropped?: (vm: string, hook: string) => void;
  /** Ended sessions kept for their VM's next session from the same process (default MAX_ENDED_KEPT). */
  maxEndedKept?: number;
  /** How the instances of VMs are read (tests): see migration-memory.ts. */
  memory?: Partial<MigrationMemoryOptions>;
  now?: () => number;
}

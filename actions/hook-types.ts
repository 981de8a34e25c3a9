/**
 * What a migration hook receives and returns. The payload is JSON (docs/actions.md shows an
 * example); 64-bit addresses are hex strings so no JSON parser loses precision.
 */

export type MigrationOutcome = 'accepted' | 'refused' | 'failed' | 'timed_out';

export interface MigrationPayload {
  /** Stable per migration: also the HTTP Idempotency-Key. */
  migrationId: string;
  vm: { id: string; labels: Readonly<Record<string, string>> };
  host: string;
  /** Why the migration was asked for. */
  reason: 'policy';
  /** `vm`: this VM's own event; `host`: a host-scope rule evacuating every VM of the host. */
  scope: 'vm' | 'host';
  rule: string;
  policyVersion: string;
  /** The event whose decision started the migration (of another VM, for a host-scope rule). */
  event: {
    vm: string;
    kind: string;
    vcpu: number | null;
    gpa: string | null;
    severity: string;
    timeMs: number;
  };
  /** Guest physical pages seen poisoned in this VM so far (hex, page aligned). */
  poisonedPages: string[];
  /** More pages were seen than are listed (the per-VM bound was reached). */
  poisonedPagesTruncated: boolean;
  requestedAt: string;
}

export interface HookResult {
  outcome: MigrationOutcome;
  /** HTTP status / exit code / error text, for the record. */
  detail: string | null;
  attempts: number;
}

/** One configured hook, ready to run. */
export interface HookRunner {
  readonly name: string;
  readonly kind: 'http' | 'exec';
  /** `stop` aborts when the daemon stops: the hook ends at once (its process killed, its request aborted). */
  run(payload: MigrationPayload, stop?: AbortSignal): Promise<HookResult>;
}

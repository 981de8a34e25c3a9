/**
 * Stable journal MESSAGE_IDs for seawall's entry types, generated once with
 * `systemd-id128 new` and fixed forever: operators filter on them (`journalctl MESSAGE_ID=…`) and
 * systemd/catalog/seawall.catalog explains each one (`journalctl -x`). Never change or reuse an
 * id; add a new one for a new entry type, with the fields its entries carry (message-fields.ts) and
 * a catalog entry.
 */

/** MESSAGE_ID per entry type (32 lowercase hex digits, sd-id128(3) format without dashes). */
export const MessageId = {
  /**
   * One memory-error event (SEA/NISV/MMIO/SIGBUS) with the decision taken and the verdict sent:
   * one entry per event, carrying the event, decision and action fields together.
   */
  MEMORY_ERROR: '73ccb16db500499180c8c4179ad30442',
  /** A VM was killed (verdict or enforcement). */
  VM_KILLED: '9267d3a03b1a405abee46df9f5605ea4',
  /** A migration was requested, completed or refused. */
  VM_MIGRATION: '57e81b14c40440ada046d0e2535bf46a',
  /** The host could not inject what the policy asked; the rule's onUnsupported applied. */
  INJECTION_DOWNGRADED: '6fc68697374341509aa94154113b8061',
  /** A new policy became live. */
  POLICY_RELOADED: '09a97ac72ffd4a3d98df361c8ca7fcd6',
  /** A policy reload was rejected; the last good policy stays live. */
  POLICY_RELOAD_FAILED: '2b5abc98c99045d98eb55cc7aebc733f',
  /** A plugin broke the wire protocol; that session was closed. */
  PROTOCOL_ERROR: '9fff8e8cfbc749fb8f0cc45e13dc91a4',
  /** A plugin session ended (disconnect, VM exit, daemon shutdown). */
  SESSION_CLOSED: '8e71b56b9681442d9d7287ec5550cc6b',
  /** A reconnecting plugin reported events it handled by local fallback while the daemon was away. */
  FALLBACK_EVENTS_REPORTED: '5628a2f842a446a796b2fe27fcae2592',
  /** The daemon finished start-up (READY=1). */
  DAEMON_STARTED: '3344b555b8354e1b94d17b4b532817c4',
  /** The daemon began shutting down (STOPPING=1). */
  DAEMON_STOPPING: '15521afb21a24f8e8d1b69ec37e7c217',
  /**
   * The daemon could not start and exits non-zero: it never sent READY=1, so it sends no STOPPING=1
   * and logs no DAEMON_STOPPING either.
   */
  DAEMON_START_FAILED: 'acb00c27d4bc48e3b1cf7a2bc36faea6',
} as const;

/** One of the seawall MESSAGE_IDs. */
export type MessageIdValue = (typeof MessageId)[keyof typeof MessageId];

/** Every seawall MESSAGE_ID, for lookups and the catalog test. */
export const ALL_MESSAGE_IDS: ReadonlySet<string> = new Set(Object.values(MessageId));

/**
 * The event store's schema version 1 exactly as its first release created it (migration 1 of
 * store/schema.ts), written out so migration tests start from the real old shape rather
 * than from what the current code would create.
 */
export const V1_SCHEMA = `
  CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL, description TEXT NOT NULL);
  CREATE TABLE events (
    id INTEGER PRIMARY KEY, boot_id TEXT NOT NULL, session_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL, vm TEXT NOT NULL, labels TEXT NOT NULL, vcpu INTEGER, kind TEXT NOT NULL,
    esr TEXT, ec INTEGER, fsc INTEGER, fsc_class TEXT, abort TEXT, severity TEXT NOT NULL, sigbus_code TEXT,
    gva TEXT, gpa TEXT, replay INTEGER NOT NULL, fallback_action INTEGER, action TEXT, rule TEXT,
    policy_version TEXT, downgrade TEXT, verdict_action INTEGER, verdict_flags INTEGER, latency_ns INTEGER,
    non_conforming TEXT, UNIQUE (boot_id, session_id, seq));
  CREATE INDEX events_time ON events (time_ms);
  CREATE INDEX events_vm_time ON events (vm, time_ms);
  CREATE TABLE poisoned_pages (
    vm TEXT NOT NULL, gpa TEXT NOT NULL, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (vm, gpa)) WITHOUT ROWID;
`;

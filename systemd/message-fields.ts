/**
 * The fields every journal entry of a MESSAGE_ID carries, and the entry type that makes each log
 * site carry them.
 *
 * `journalctl -x` fills a catalog entry's `@FIELD@` placeholders from the journal entry it
 * explains (journalctl(1) --catalog, sd_journal_get_catalog(3)); a field the entry lacks is left
 * unfilled, so the operator reads a field's name where its value should be. The catalog may
 * therefore name only fields listed here for the entry's id (test/systemd/catalog.test.ts), and a
 * log site passing a {@link MessageEntry} must give each of them a value: omitting one, or giving
 * one that may be `undefined` (which the logger leaves out), does not compile.
 */
import type { JournalEntry } from './journal.js';
import { JournalField as F, type JournalFieldName, type JournalFieldValue } from './journal-fields.js';
import { MessageId, type MessageIdValue } from './message-ids.js';

/** What every entry about one memory error carries, decided or replayed (daemon/sinks/journal-sink.ts). */
const EVENT_FIELDS = [F.VM, F.SESSION, F.SEQ, F.EVENT_KIND, F.SEVERITY, F.ACTION, F.OUTCOME] as const;

/**
 * Per MESSAGE_ID, the SEAWALL_* fields each of its entries always carries. Fields an entry has
 * only sometimes (a GPA KVM did not know, the vCPU of a SIGBUS found by scrubbing) are not listed.
 */
export const MessageFields = {
  // A decided event: the rule and the policy version that decided it.
  [MessageId.MEMORY_ERROR]: [...EVENT_FIELDS, F.RULE, F.POLICY_VERSION],
  [MessageId.VM_KILLED]: [F.VM, F.RULE, F.OUTCOME, F.REASON],
  [MessageId.VM_MIGRATION]: [F.VM, F.RULE, F.OUTCOME],
  [MessageId.INJECTION_DOWNGRADED]: [F.VM, F.RULE, F.REASON, F.OUTCOME],
  [MessageId.POLICY_RELOADED]: [F.POLICY_VERSION],
  [MessageId.POLICY_RELOAD_FAILED]: [F.POLICY_VERSION, F.REASON],
  // A connection refused at HELLO has no VM or session yet.
  [MessageId.PROTOCOL_ERROR]: [F.REASON],
  [MessageId.SESSION_CLOSED]: [F.VM, F.SESSION, F.OUTCOME],
  // A replay: the plugin's fallback answered it, so nothing decided it.
  [MessageId.FALLBACK_EVENTS_REPORTED]: EVENT_FIELDS,
  [MessageId.DAEMON_STARTED]: [F.POLICY_VERSION],
  [MessageId.DAEMON_STOPPING]: [],
  [MessageId.DAEMON_START_FAILED]: [F.REASON],
} as const satisfies { readonly [Id in MessageIdValue]: readonly JournalFieldName[] };

/** The fields {@link MessageFields} lists for `Id`. */
export type MessageFieldName<Id extends MessageIdValue> = (typeof MessageFields)[Id][number];

/** SEAWALL_* fields only, by their JournalField names: a field the daemon logs is one it documents. */
type Fields = { readonly [K in JournalFieldName]?: JournalFieldValue };
type Carried<Id extends MessageIdValue> = [MessageFieldName<Id>] extends [never]
  ? { fields?: Fields }
  : { fields: Fields & { readonly [K in MessageFieldName<Id>]: Exclude<JournalFieldValue, undefined> } };

/**
 * An entry with MESSAGE_ID `Id` (any of them by default, as a union discriminated by
 * `messageId`): its `fields` hold every field {@link MessageFields} lists for the id, and may
 * hold others.
 */
export type MessageEntry<Id extends MessageIdValue = MessageIdValue> = Id extends MessageIdValue
  ? Omit<JournalEntry, 'messageId' | 'fields'> & { messageId: Id } & Carried<Id>
  : never;

/** What seawall logs: an entry without a MESSAGE_ID, or a {@link MessageEntry}. */
export type SeawallEntry =
  | (Omit<JournalEntry, 'messageId' | 'fields'> & { messageId?: undefined; fields?: Fields })
  | MessageEntry;

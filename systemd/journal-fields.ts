/**
 * The structured journal fields seawall defines, and the rules every field name must follow.
 *
 * Names follow systemd.journal-fields(7) and sd_journal_print(3): uppercase letters, digits and
 * underscores, not starting with a digit or underscore (leading `_` is reserved for trusted
 * fields the journal adds itself), at most 64 characters.
 */
import { SystemdError } from './errors.js';

/** Every SEAWALL_* field the daemon logs. Use these constants, never string literals. */
export const JournalField = {
  /** VM name or id as the plugin's session declared it. */
  VM: 'SEAWALL_VM',
  /** vCPU index within the VM. */
  VCPU: 'SEAWALL_VCPU',
  /** Per-session event sequence number from the plugin. */
  SEQ: 'SEAWALL_SEQ',
  /** Event kind: sea, nisv, mmio, sigbus. */
  EVENT_KIND: 'SEAWALL_EVENT_KIND',
  /** The ESR_EL2 value KVM reported, as 0x-prefixed hex. */
  ESR: 'SEAWALL_ESR',
  /** Exception class from ESR[31:26] (data or instruction abort), as hex. */
  EC: 'SEAWALL_EC',
  /** Fault status code from ISS[5:0], as hex. */
  FSC: 'SEAWALL_FSC',
  /** Severity decoded from ISS.SET: UER, UEO, UC, or unknown. */
  SEVERITY: 'SEAWALL_SEVERITY',
  /** Guest virtual address (FAR), as hex; only on a sea event, and absent when FnV says it is not valid. */
  GVA: 'SEAWALL_GVA',
  /** Guest physical address, as hex; absent when KVM did not know it. */
  GPA: 'SEAWALL_GPA',
  /** The action decided or carried out: inject, kill, migrate. */
  ACTION: 'SEAWALL_ACTION',
  /** Name of the policy rule that matched. */
  RULE: 'SEAWALL_RULE',
  /** Version (content hash) of the policy that decided. */
  POLICY_VERSION: 'SEAWALL_POLICY_VERSION',
  /**
   * Under a dry-run policy, what the rule decided and was not sent, with its parameters in words:
   * `kill (grace 5000 ms)`. Only on such an entry.
   */
  WOULD_HAVE: 'SEAWALL_WOULD_HAVE',
  /** Result of the action: ok, failed, downgraded, refused, timeout … */
  OUTCOME: 'SEAWALL_OUTCOME',
  /** Free-form machine-oriented reason (error code, downgrade cause). */
  REASON: 'SEAWALL_REASON',
  /** Plugin session id. */
  SESSION: 'SEAWALL_SESSION',
  /** PID of a refused plugin connection's peer (SO_PEERCRED); absent when the kernel gave none. */
  PEER_PID: 'SEAWALL_PEER_PID',
  /** UID of a refused plugin connection's peer (SO_PEERCRED); absent when the kernel gave none. */
  PEER_UID: 'SEAWALL_PEER_UID',
  /** How many entries an entry stands for that were not written (rate limit, journald backlog). */
  SUPPRESSED: 'SEAWALL_SUPPRESSED',
  /** How many memory errors a periodic summary entry counts (summary mode). */
  EVENTS: 'SEAWALL_EVENTS',
} as const;

/** One of the SEAWALL_* field names. */
export type JournalFieldName = (typeof JournalField)[keyof typeof JournalField];

/** Values a field may carry; `undefined` omits the field from the entry. */
export type JournalFieldValue = string | number | bigint | boolean | undefined;

const FIELD_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

// Fields the logger itself writes; a caller overriding them would produce duplicate or
// contradictory entries (two PRIORITY= values, a foreign SYSLOG_IDENTIFIER).
const RESERVED = new Set(['MESSAGE', 'MESSAGE_ID', 'PRIORITY', 'SYSLOG_IDENTIFIER']);

/**
 * Checks a caller-supplied field name.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_FIELD_INVALID`
 */
export function assertFieldName(name: string): void {
  if (!FIELD_NAME.test(name)) {
    throw new SystemdError(
      'SEAWALL_SYSTEMD_FIELD_INVALID',
      `journal field name ${JSON.stringify(name)} must match ${FIELD_NAME.source} (systemd.journal-fields(7))`,
      { field: name },
    );
  }
  if (RESERVED.has(name)) {
    throw new SystemdError(
      'SEAWALL_SYSTEMD_FIELD_INVALID',
      `journal field ${name} is set by the logger itself`,
      {
        field: name,
      },
    );
  }
}

/** Renders a field value: numbers and bigints in decimal, booleans as `true`/`false`. */
export function fieldValueText(value: string | number | bigint | boolean): string {
  return typeof value === 'string' ? value : String(value);
}

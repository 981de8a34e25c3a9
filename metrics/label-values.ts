import { labelTextProblem, MAX_LABEL_TEXT_LENGTH } from '../errors/index.js';
import { MetricsError } from './errors.js';

/**
 * The closed label vocabularies. Each is the single source of its TypeScript type, of the runtime
 * check at the method boundary, and of the series pre-created at zero (so `increase()` in the alert
 * rules sees the first event of a closed-label family).
 */

/** How the event reached the daemon: KVM_EXIT_ARM_SEA, KVM_EXIT_ARM_NISV, an MMIO exit, a SIGBUS. */
export const MEMORY_ERROR_KINDS = ['sea', 'nisv', 'mmio', 'sigbus'] as const;
export type MemoryErrorKind = (typeof MEMORY_ERROR_KINDS)[number];

/**
 * ESR_ELx.SET [12:11] for FSC 0x10: 0b00 UER, 0b10 UC, 0b11 UEO, 0b01 reserved (Arm ARM, ESR_ELx ISS
 * encoding for a Data Abort; see shared/reference/kvm-arm64-sea.md);
 * `unknown` when SET is not meaningful (other FSCs, FnV, events without an ESR).
 */
export const SEVERITIES = ['uer', 'ueo', 'uc', 'reserved', 'unknown'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** The verdict's action; `none` when the policy chose to let the event pass (dry run, observe-only rule). */
export const ACTIONS = ['inject', 'kill', 'migrate', 'none'] as const;
export type Action = (typeof ACTIONS)[number];

/** How a plugin session ended: a clean close, a protocol violation, or refused at the handshake. */
export const SESSION_OUTCOMES = ['closed', 'protocol_error', 'rejected'] as const;
export type SessionOutcome = (typeof SESSION_OUTCOMES)[number];

/** A hook's outcome, or `dropped`: the hook queue was full, the hook never ran (docs/actions.md). */
export const MIGRATION_OUTCOMES = ['accepted', 'refused', 'failed', 'timed_out', 'dropped'] as const;
export type MigrationOutcome = (typeof MIGRATION_OUTCOMES)[number];

/** `exited`: the VMM exited within its grace; `sigkilled`: enforcement was needed; `failed`: neither worked. */
export const KILL_OUTCOMES = ['exited', 'sigkilled', 'failed'] as const;
export type KillOutcome = (typeof KILL_OUTCOMES)[number];

/**
 * How a plugin reported an event its own fallback answered: `replay`, sent again after a reconnect
 * (the daemon never answered it); `applied`, an APPLIED `source` FALLBACK for an event the daemon
 * did answer (its verdict came after the plugin's deadline, or could not be applied).
 */
export const FALLBACK_VIAS = ['replay', 'applied'] as const;
export type FallbackVia = (typeof FALLBACK_VIAS)[number];

/** The value an open label takes once its bound of distinct values is reached. */
export const OVERFLOW_LABEL_VALUE = 'other';

/** Longest accepted open label value (VM id, rule name, reason, op, policy version), in UTF-16 units. */
export const MAX_LABEL_VALUE_LENGTH = MAX_LABEL_TEXT_LENGTH;

const closedSets = new Map<readonly string[], ReadonlySet<string>>();

/**
 * Checks `value` against a closed vocabulary. Called only when a label combination is first seen
 * (results are cached by the caller), so the Set lookup is off the hot path.
 */
export function assertClosedLabel<const T extends readonly string[]>(
  label: string,
  allowed: T,
  value: unknown,
): asserts value is T[number] {
  let set = closedSets.get(allowed);
  if (set === undefined) {
    set = new Set(allowed);
    closedSets.set(allowed, set);
  }
  if (typeof value !== 'string' || !set.has(value)) rejectClosedLabel(label, allowed, value);
}

/** Throws the error for a value outside a closed vocabulary (for callers whose lookup already missed). */
export function rejectClosedLabel(label: string, allowed: readonly string[], value: unknown): never {
  throw new MetricsError(
    'SEAWALL_METRICS_INVALID_LABEL',
    `label ${label}=${JSON.stringify(value)} is not one of ${allowed.join('|')}`,
    { label, value, allowed },
  );
}

/**
 * Checks the shape of an open label value: a non-empty string of at most 128 printable characters
 * (errors/label-text.ts, the rule the policy schema applies to rule names too).
 */
export function assertOpenLabel(label: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || labelTextProblem(value) !== null) {
    throw new MetricsError(
      'SEAWALL_METRICS_INVALID_LABEL',
      `label ${label} must be 1–${MAX_LABEL_VALUE_LENGTH} printable characters, got ${JSON.stringify(value)}`,
      { label, value },
    );
  }
}

/**
 * Bounds the distinct values an open label (rule, reason, op, from, to) may take. The first `max`
 * distinct values are kept as they are; later new values are folded into `other` and reported to
 * `onOverflow` once per folded call, so the fold is counted rather than silent.
 */
export class BoundedLabelValues {
  readonly label: string;
  readonly max: number;
  readonly #seen = new Set<string>();
  readonly #onOverflow: (label: string) => void;

  constructor(label: string, max: number, onOverflow: (label: string) => void) {
    this.label = label;
    this.max = max;
    this.#onOverflow = onOverflow;
  }

  /** The value to export for `value`: itself, or `other` once the bound is reached. */
  resolve(value: unknown): string {
    assertOpenLabel(this.label, value);
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.max) {
      this.#onOverflow(this.label);
      return OVERFLOW_LABEL_VALUE;
    }
    this.#seen.add(value);
    return value;
  }
}

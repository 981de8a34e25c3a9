/**
 * Errors and issues of the policy engine. A load never throws for bad input: it returns every
 * issue as data (`PolicyIssue`), each with a stable `code`, its YAML path and line. Callers
 * branch on `code`, never on message text.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

/** Why a policy (or a policy test file, or an event) was refused. */
export type PolicyIssueCode =
  /** The file could not be read. */
  | 'unreadable'
  /** YAML syntax error (bad indentation, duplicate key, unclosed quote…). */
  | 'yaml-syntax'
  /** Over a bound on size, aliases or nesting depth (yaml-source.ts): refused before it can hurt. */
  | 'yaml-limit'
  /** A key the schema does not know (every object is strict). */
  | 'unknown-key'
  /** Wrong type, missing key, value out of range: anything else the schema refuses. */
  | 'schema'
  /** A duration such as `5s`, `10m` that does not parse. */
  | 'duration-syntax'
  /** A rate such as `3 / 10m` that does not parse. */
  | 'rate-syntax'
  /** A GPA that is not a 64-bit unsigned integer, or a range with from > to. */
  | 'gpa-range'
  /** ISS fields or a raw ISS the kvm/ codec refuses (SET without FSC 0x10, bits above 24…). */
  | 'iss-invalid'
  /** Two rules with the same name (names identify decisions in logs and `explain`). */
  | 'duplicate-rule'
  /** A migrate hook that is not in the declared `hooks` list. */
  | 'unknown-hook'
  /** An `onUnsupported` list that can run out of options (e.g. only `emulate`). */
  | 'unsupported-fallback'
  /** More rules, label keys or values, or GPA ranges than a policy may hold (POLICY_LIMITS). */
  | 'policy-limit'
  /** A test file names a policy that does not load. */
  | 'policy-invalid';

/** One problem, located: `path` like `rules[2].action.iss`, `line` 1-based (0 when unknown). */
export interface PolicyIssue {
  code: PolicyIssueCode;
  path: string;
  line: number;
  message: string;
}

/** An issue before its line is known (the analyzer works on data, the loader adds lines). */
export interface PathIssue {
  code: PolicyIssueCode;
  path: readonly (string | number)[];
  message: string;
}

export type PolicyErrorCode =
  /** A policy document failed validation; `issues` lists every problem. */
  | 'SEAWALL_POLICY_INVALID'
  /** An event (JSON or test-file event) failed validation. */
  | 'SEAWALL_POLICY_EVENT_INVALID'
  /** An option of the policy engine is out of range (the rate/repeat state bound). */
  | 'SEAWALL_POLICY_INVALID_OPTION';

/** Raised by the throwing entry points (`compilePolicy`, `policyEventFromJson`). */
export class PolicyError extends SeawallError<PolicyErrorCode> {
  override readonly name = 'PolicyError';
  readonly issues: readonly PolicyIssue[];

  constructor(code: PolicyErrorCode, issues: readonly PolicyIssue[]) {
    super(code, issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '));
    this.issues = issues;
  }
}

export const isPolicyError = errorGuard(PolicyError);

/** `['rules', 2, 'action', 'iss']` → `rules[2].action.iss`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/**
 * Compiles a rule's `match` block into predicates, once, at load. Each matcher also knows how
 * to say what it expected and what the event had, which `explain` reports for the first matcher
 * of a rule that failed. Matchers run in a fixed order, cheapest and stateless first; rate
 * windows, which read state, run last.
 */
import type { PolicyEvent } from './decision.js';
import { describePackedRanges, inPackedRanges, packGpaRanges } from './gpa-ranges.js';
import type { LabelMatch, RateScope, RuleMatch } from './schema.js';
import type { PolicyState } from './state.js';

export interface Matcher {
  /** The key in `match` (`kind`, `labels.tier`, `rate`…). */
  readonly name: string;
  /** What the rule asks for, in the policy's own terms. */
  readonly expected: string;
  test(event: PolicyEvent, state: PolicyState): boolean;
  /** What the event (or the state) had, for explain; never on the decide path. */
  actual(event: PolicyEvent, state: PolicyState): string;
  /**
   * For matchers that read rate/repeat state: what they count, so `seawall why` can show the
   * stored events that made them hold.
   */
  readonly reads?: MatcherReads;
}

/** The state a matcher reads: a rate window over a scope, or earlier errors on the same page. */
export type MatcherReads =
  | { kind: 'rate'; scope: RateScope; count: number; windowMs: number }
  | { kind: 'repeatPage'; want: boolean };

const hex = (n: bigint | null) => (n === null ? 'unknown' : `0x${n.toString(16)}`);

/** A label's value, own properties only: `constructor` or `__proto__` are labels like any other. */
export function labelOf(event: PolicyEvent, key: string): string | undefined {
  const labels = event.vm.labels;
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}

function setMatcher<T extends string | number>(
  name: string,
  values: readonly T[],
  get: (e: PolicyEvent) => T | null,
): Matcher {
  const set = new Set<T | null>(values);
  return {
    name,
    // Built on demand, like a label list's: only explain reads it, and a list may be long.
    get expected() {
      return values.length === 1 ? String(values[0]) : `one of ${values.join(', ')}`;
    },
    test: (e) => set.has(get(e)),
    actual: (e) => String(get(e) ?? 'none'),
  };
}

function labelMatcher(key: string, m: LabelMatch): Matcher {
  const name = `labels.${key}`;
  const actual = (e: PolicyEvent) => {
    const v = labelOf(e, key);
    return v === undefined ? 'absent' : `'${v}'`;
  };
  if (typeof m === 'string') {
    return { name, expected: `'${m}'`, test: (e) => labelOf(e, key) === m, actual };
  }
  if ('in' in m) {
    const set = new Set(m.in);
    return {
      name,
      // Built on demand, like a GPA list's: only explain reads it.
      get expected() {
        return `one of ${m.in.map((v) => `'${v}'`).join(', ')}`;
      },
      test: (e) => {
        const v = labelOf(e, key);
        return v !== undefined && set.has(v);
      },
      actual,
    };
  }
  const want = m.exists;
  return {
    name,
    expected: want ? 'present' : 'absent',
    test: (e) => (labelOf(e, key) !== undefined) === want,
    actual,
  };
}

/** The matchers of one rule, in evaluation order. */
/** `packed`: the rule's GPA ranges already packed (packGpaRanges), e.g. by a reload worker. */
export function compileMatchers(match: RuleMatch, packed?: BigUint64Array): Matcher[] {
  const out: Matcher[] = [];
  if (match.kind) out.push(setMatcher('kind', match.kind, (e) => e.kind));
  if (match.abort) out.push(setMatcher('abort', match.abort, (e) => e.abort));
  if (match.fsc) out.push(setMatcher('fsc', match.fsc, (e) => e.fsc));
  if (match.severity) out.push(setMatcher('severity', match.severity, (e) => e.severity));
  if (match.vcpu) out.push(setMatcher('vcpu', match.vcpu, (e) => e.vcpu));
  if (match.gpaKnown !== undefined) {
    const want = match.gpaKnown;
    out.push({
      name: 'gpaKnown',
      expected: String(want),
      test: (e) => (e.gpa !== null) === want,
      actual: (e) => String(e.gpa !== null),
    });
  }
  const gpa = packed ?? (match.gpa ? packGpaRanges(match.gpa) : undefined);
  if (gpa) {
    out.push({
      name: 'gpa',
      // Built on demand: with 200,000 ranges the text is megabytes, and only explain reads it.
      get expected() {
        return `a page overlapping ${describePackedRanges(gpa)}`;
      },
      test: (e) => e.gpa !== null && inPackedRanges(gpa, e.gpa),
      actual: (e) => hex(e.gpa),
    });
  }
  if (match.labels) {
    for (const [key, m] of Object.entries(match.labels)) out.push(labelMatcher(key, m));
  }
  if (match.repeatPage !== undefined) {
    const want = match.repeatPage;
    out.push({
      name: 'repeatPage',
      expected: want ? 'page seen before for this VM' : 'page not seen before for this VM',
      reads: { kind: 'repeatPage', want },
      test: (e, s) => s.seenPage(e) === want,
      actual: (e, s) => (e.gpa === null ? 'GPA unknown' : s.seenPage(e) ? 'seen before' : 'first time'),
    });
  }
  if (match.rate) {
    const { threshold, scope } = match.rate;
    const { count, windowMs } = threshold;
    out.push({
      name: 'rate',
      expected: `${threshold.text} per ${scope}`,
      reads: { kind: 'rate', scope, count, windowMs },
      // This event counts: the rule fires when it brings the count within the window to the threshold.
      test: (e, s) => (scope !== 'page' || e.gpa !== null) && s.countWithin(scope, e, windowMs) + 1 >= count,
      actual: (e, s) =>
        scope === 'page' && e.gpa === null
          ? 'GPA unknown: no page to count'
          : `${s.countWithin(scope, e, windowMs) + 1} within ${threshold.text.split('/')[1]?.trim()} (this event included)`,
    });
  }
  return out;
}

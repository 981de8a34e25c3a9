/**
 * The compiler: a validated policy document becomes a `CompiledPolicy`, a `DecisionProvider`
 * whose per-event work is a label lookup, a short scan of precompiled predicates and one index
 * into a table of frozen decisions. Matchers, the label index and the version are built at load;
 * a rule's answer in each of the 24 host contexts (dry-run substitutions included) the first time
 * an event needs it, then kept.
 */
import { createHash } from 'node:crypto';
import {
  actionFor,
  allContexts,
  builtinOutcome,
  CONTEXT_COUNT,
  contextIndex,
  type Route,
  routeOf,
} from './actions.js';
import type { Decision, DecisionProvider, HostCapabilities, PolicyEvent } from './decision.js';
import { PolicyError } from './errors.js';
import { type Explanation, explainEvent } from './explain.js';
import { compileMatchers, labelOf, type Matcher } from './matchers.js';
import { documentIssues } from './policy-checks.js';
import type { ActionSpec, OnUnsupportedOption, PolicyDocument, PolicyRule } from './schema.js';
import { DEFAULT_MAX_KEYS, PolicyState } from './state.js';

/** Repeat-page memory the daemon rebuilds from its store at start, and `explain --store` replays. */
export const STATE_REBUILD_WINDOW_MS = 7 * 86_400_000;

/**
 * A rule, compiled. `index` is its position in the file; the default has index -1. Its answer
 * in each of the host contexts is built the first time an event needs it, then kept: a reload
 * compiles on the event loop, and building every rule's table there cost ~10–25 µs a rule
 * (a 20,000-rule policy held every verdict for a quarter to half a second).
 */
export class CompiledRule {
  readonly #table: (Decision | undefined)[] = new Array(CONTEXT_COUNT);

  constructor(
    readonly name: string,
    readonly index: number,
    readonly matchers: readonly Matcher[],
    private readonly spec: DecisionSpec,
  ) {}

  /** The decision for `contextIndex(host, route)`, frozen and shared between events. */
  decision(context: number): Decision {
    return this.#table[context] ?? this.#build(context);
  }

  /** Every context's decision, by `contextIndex(host, route)`. */
  get decisions(): readonly Decision[] {
    return Array.from({ length: CONTEXT_COUNT }, (_, i) => this.decision(i));
  }

  #build(context: number): Decision {
    const c = CONTEXTS[context];
    if (c === undefined) throw new RangeError(`no host context ${context}`);
    const d = decisionIn(this.name, this.spec, c.host, c.route);
    this.#table[context] = d;
    return d;
  }
}

/** What a rule's decisions are built from. */
interface DecisionSpec {
  action: ActionSpec;
  options: readonly OnUnsupportedOption[];
  version: string;
  dryRun: boolean;
}

export interface CompileOptions {
  /** Rate/repeat state to read and record into; keep one per daemon across reloads. */
  state?: PolicyState;
  /**
   * Work already done elsewhere (a reload worker, daemon/policy-worker.ts), so that what is left
   * here is cheap: the version (policyVersionOf of the full document) and each rule's GPA ranges
   * packed by packGpaRanges, by rule index. The document's own `gpa` lists are then not read.
   */
  precompiled?: {
    version: string;
    gpa: readonly (BigUint64Array | undefined)[];
    /** The rules already compiled by `compileRule`, in file order (the daemon compiles them in slices). */
    rules?: readonly CompiledRule[];
  };
}

/** Rule `index` of a policy compiled: its matchers now, its decisions when first needed. */
export function compileRule(
  rule: PolicyRule,
  index: number,
  policy: { version: string; dryRun: boolean },
  gpa?: BigUint64Array,
): CompiledRule {
  return new CompiledRule(rule.name, index, compileMatchers(rule.match, gpa), {
    action: rule.action,
    options: rule.onUnsupported ?? ['downgrade'],
    version: policy.version,
    dryRun: policy.dryRun,
  });
}

/** Canonical JSON (sorted keys, bigints as hex) of the validated document: comments and layout do not change it. */
function canonical(value: unknown): string {
  if (typeof value === 'bigint') return JSON.stringify(`0x${value.toString(16)}`);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Short content hash identifying a policy version in decisions, logs and metrics. */
export function policyVersionOf(doc: PolicyDocument): string {
  return createHash('sha256').update(canonical(doc)).digest('hex').slice(0, 12);
}

/** The host contexts by `contextIndex`. */
const CONTEXTS = (() => {
  const all = allContexts();
  const byIndex: (typeof all)[number][] = new Array(CONTEXT_COUNT);
  for (const c of all) byIndex[contextIndex(c.host, c.route)] = c;
  return byIndex;
})();

function decisionIn(name: string, spec: DecisionSpec, host: HostCapabilities, route: Route): Decision {
  const outcome = actionFor(spec.action, host, route, spec.options);
  let d: Decision;
  if (spec.dryRun) {
    const dry: Decision['dryRun'] = { wouldHave: outcome.decision };
    if (outcome.downgrade) dry.downgrade = outcome.downgrade;
    d = { policyVersion: spec.version, rule: name, ...builtinOutcome(route), dryRun: dry };
  } else {
    d = { policyVersion: spec.version, rule: name, ...outcome.decision };
    if (outcome.downgrade) d.downgrade = outcome.downgrade;
  }
  return Object.freeze(d);
}

/** The label key most rules pin to one value (or a set), if indexing on it pays. */
function chooseIndexKey(doc: PolicyDocument): string | null {
  const counts = new Map<string, number>();
  for (const rule of doc.rules) {
    for (const [key, m] of Object.entries(rule.match.labels ?? {})) {
      if (typeof m === 'string' || 'in' in m) counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  let best: string | null = null;
  let bestCount = 1; // one pinned rule saves nothing
  for (const [key, n] of counts) {
    if (n > bestCount) {
      best = key;
      bestCount = n;
    }
  }
  return best;
}

/** A compiled policy: decides events for the daemon, explains them for operators. */
export class CompiledPolicy implements DecisionProvider {
  readonly version: string;
  readonly name: string;
  readonly dryRun: boolean;
  readonly rules: readonly CompiledRule[];
  readonly defaultRule: CompiledRule;
  readonly state: PolicyState;
  /** The label key rules are bucketed by, or null when no key pays. */
  readonly indexKey: string | null;
  /**
   * How far back stored events must be replayed to rebuild this policy's rate and repeat state:
   * the longest rate window, and at least the week of repeat-page memory the daemon keeps.
   */
  readonly stateWindowMs: number;
  private readonly buckets: ReadonlyMap<string, readonly CompiledRule[]>;
  private readonly unindexed: readonly CompiledRule[];

  constructor(doc: PolicyDocument, options: CompileOptions = {}) {
    this.version = options.precompiled?.version ?? policyVersionOf(doc);
    this.name = doc.name;
    this.dryRun = doc.dryRun;
    this.state = options.state ?? new PolicyState();
    const version = this.version;
    const given = options.precompiled?.rules;
    if (given !== undefined && given.length !== doc.rules.length)
      throw new RangeError(`${given.length} rules compiled for a policy of ${doc.rules.length}`);
    this.rules =
      given ??
      doc.rules.map((rule, index) => compileRule(rule, index, this, options.precompiled?.gpa[index]));
    this.defaultRule = new CompiledRule('default', -1, [], {
      action: doc.default.action,
      options: doc.default.onUnsupported ?? ['downgrade'],
      version,
      dryRun: doc.dryRun,
    });
    let maxThreshold = 1;
    let window = STATE_REBUILD_WINDOW_MS;
    for (const rule of doc.rules) {
      if (!rule.match.rate) continue;
      maxThreshold = Math.max(maxThreshold, rule.match.rate.threshold.count);
      window = Math.max(window, rule.match.rate.threshold.windowMs);
    }
    this.stateWindowMs = window;
    this.state.reserve(maxThreshold);
    // A policy without a bound has the default one, whatever the policy before it said.
    this.state.setMaxKeys(doc.rateStateBound ?? DEFAULT_MAX_KEYS);

    // Rules pinned to values of the index key go into a bucket per value, in file order; an
    // event's bucket is scanned merged with the unpinned rules by file order, so first-match-wins
    // holds. Built in one pass: no list is copied per rule or per value (a policy of 20,000
    // values and 3,000 unpinned rules took seconds, and more ran out of memory, when it was).
    this.indexKey = chooseIndexKey(doc);
    const key = this.indexKey;
    const pinned = new Map<string, CompiledRule[]>();
    const unindexed: CompiledRule[] = [];
    this.rules.forEach((rule, i) => {
      const m = key === null ? undefined : doc.rules[i]?.match.labels?.[key];
      if (m === undefined || (typeof m !== 'string' && !('in' in m))) {
        unindexed.push(rule);
        return;
      }
      for (const v of typeof m === 'string' ? [m] : m.in) {
        const bucket = pinned.get(v);
        if (bucket === undefined) pinned.set(v, [rule]);
        else if (bucket[bucket.length - 1] !== rule) bucket.push(rule); // `in: [a, a]`
      }
    });
    this.unindexed = unindexed;
    this.buckets = pinned;
  }

  /** The first matching rule (or the default), without recording the event. */
  match(event: PolicyEvent): CompiledRule {
    const state = this.state;
    const v = this.indexKey === null ? undefined : labelOf(event, this.indexKey);
    const pinned = v === undefined ? undefined : this.buckets.get(v);
    const unpinned = this.unindexed;
    // Two lists, each in file order: the next rule is whichever comes first in the file.
    let i = 0;
    let j = 0;
    const np = pinned === undefined ? 0 : pinned.length;
    outer: for (;;) {
      let rule: CompiledRule;
      const p = i < np ? ((pinned as readonly CompiledRule[])[i] as CompiledRule) : undefined;
      const u = j < unpinned.length ? (unpinned[j] as CompiledRule) : undefined;
      if (p !== undefined && (u === undefined || p.index < u.index)) {
        rule = p;
        i++;
      } else if (u !== undefined) {
        rule = u;
        j++;
      } else break;
      const ms = rule.matchers;
      for (let k = 0; k < ms.length; k++) if (!(ms[k] as Matcher).test(event, state)) continue outer;
      return rule;
    }
    return this.defaultRule;
  }

  /**
   * Decides one event and records it in the state (rate windows, repeat pages). Returns a frozen
   * decision shared between events: copy it before adding fields. Never throws for a well-typed event.
   */
  decide(event: PolicyEvent, host: HostCapabilities): Decision {
    const rule = this.match(event);
    this.state.observe(event);
    return rule.decision(contextIndex(host, routeOf(event)));
  }

  /** Why `event` gets its decision on `host`; reads the state, records nothing. */
  explain(event: PolicyEvent, host: HostCapabilities): Explanation {
    return explainEvent(this, event, host);
  }
}

/**
 * Compiles a validated document. Throws `PolicyError` (SEAWALL_POLICY_INVALID) when whole-document
 * checks fail; `parsePolicy` has already run them for documents it returns.
 */
export function compilePolicy(doc: PolicyDocument, options: CompileOptions = {}): CompiledPolicy {
  const issues = documentIssues(doc);
  if (issues.length > 0) {
    throw new PolicyError(
      'SEAWALL_POLICY_INVALID',
      issues.map((i) => ({ code: i.code, path: i.path.join('.'), line: 0, message: i.message })),
    );
  }
  return new CompiledPolicy(doc, options);
}

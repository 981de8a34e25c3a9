/**
 * The compiler: a validated policy document becomes a `CompiledPolicy`, a `DecisionProvider`
 * whose per-event work is a label lookup, a short scan of precompiled predicates and one index
 * into a table of frozen decisions. Everything that can be decided at load is: matchers, the
 * label index, the answer for each of the 24 host contexts, dry-run substitutions, the version.
 */
import { createHash } from 'node:crypto';
import { actionFor, allContexts, builtinOutcome, CONTEXT_COUNT, contextIndex, routeOf } from './actions.js';
import type { Decision, DecisionProvider, HostCapabilities, PolicyEvent } from './decision.js';
import { PolicyError } from './errors.js';
import { type Explanation, explainEvent } from './explain.js';
import { compileMatchers, labelOf, type Matcher } from './matchers.js';
import { documentIssues } from './policy-checks.js';
import type { ActionSpec, OnUnsupportedOption, PolicyDocument } from './schema.js';
import { PolicyState } from './state.js';

/** Repeat-page memory the daemon rebuilds from its store at start, and `explain --store` replays. */
export const STATE_REBUILD_WINDOW_MS = 7 * 86_400_000;

/** A rule, compiled. `index` is its position in the file; the default has index -1. */
export interface CompiledRule {
  readonly name: string;
  readonly index: number;
  readonly matchers: readonly Matcher[];
  /** Decisions by `contextIndex(host, route)`, frozen and shared between events. */
  readonly decisions: readonly Decision[];
}

export interface CompileOptions {
  /** Rate/repeat state to read and record into; keep one per daemon across reloads. */
  state?: PolicyState;
  /**
   * Work already done elsewhere (a reload worker, daemon/policy-worker.ts), so that what is left
   * here is cheap: the version (policyVersionOf of the full document) and each rule's GPA ranges
   * packed by packGpaRanges, by rule index. The document's own `gpa` lists are then not read.
   */
  precompiled?: { version: string; gpa: readonly (BigUint64Array | undefined)[] };
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

function decisionTable(
  name: string,
  action: ActionSpec,
  options: readonly OnUnsupportedOption[],
  version: string,
  dryRun: boolean,
): Decision[] {
  const table: Decision[] = new Array(CONTEXT_COUNT);
  for (const { host, route } of allContexts()) {
    const outcome = actionFor(action, host, route, options);
    let d: Decision;
    if (dryRun) {
      const dry: Decision['dryRun'] = { wouldHave: outcome.decision };
      if (outcome.downgrade) dry.downgrade = outcome.downgrade;
      d = { policyVersion: version, rule: name, ...builtinOutcome(route), dryRun: dry };
    } else {
      d = { policyVersion: version, rule: name, ...outcome.decision };
      if (outcome.downgrade) d.downgrade = outcome.downgrade;
    }
    table[contextIndex(host, route)] = Object.freeze(d);
  }
  return table;
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
    this.rules = doc.rules.map((rule, index) => ({
      name: rule.name,
      index,
      matchers: compileMatchers(rule.match, options.precompiled?.gpa[index]),
      decisions: decisionTable(
        rule.name,
        rule.action,
        rule.onUnsupported ?? ['downgrade'],
        version,
        doc.dryRun,
      ),
    }));
    this.defaultRule = {
      name: 'default',
      index: -1,
      matchers: [],
      decisions: decisionTable(
        'default',
        doc.default.action,
        doc.default.onUnsupported ?? ['downgrade'],
        version,
        doc.dryRun,
      ),
    };
    let maxThreshold = 1;
    let window = STATE_REBUILD_WINDOW_MS;
    for (const rule of doc.rules) {
      if (!rule.match.rate) continue;
      maxThreshold = Math.max(maxThreshold, rule.match.rate.threshold.count);
      window = Math.max(window, rule.match.rate.threshold.windowMs);
    }
    this.stateWindowMs = window;
    this.state.reserve(maxThreshold);
    if (doc.rateStateBound !== undefined) this.state.setMaxKeys(doc.rateStateBound);

    // Rules pinned to values of the index key go into a bucket per value; every bucket is merged
    // with the unpinned rules in file order, so first-match-wins holds whichever list is scanned.
    this.indexKey = chooseIndexKey(doc);
    const key = this.indexKey;
    const pinned = new Map<string, CompiledRule[]>();
    const unindexed: CompiledRule[] = [];
    this.rules.forEach((rule, i) => {
      const m = key === null ? undefined : doc.rules[i]?.match.labels?.[key];
      if (m === undefined || (typeof m !== 'string' && !('in' in m))) unindexed.push(rule);
      else
        for (const v of typeof m === 'string' ? [m] : m.in) pinned.set(v, [...(pinned.get(v) ?? []), rule]);
    });
    this.unindexed = unindexed;
    const buckets = new Map<string, readonly CompiledRule[]>();
    for (const [value, rules] of pinned)
      buckets.set(
        value,
        [...rules, ...unindexed].sort((a, b) => a.index - b.index),
      );
    this.buckets = buckets;
  }

  /** The rules an event can match, in file order. */
  private candidates(event: PolicyEvent): readonly CompiledRule[] {
    if (this.indexKey === null) return this.unindexed;
    const v = labelOf(event, this.indexKey);
    return (v === undefined ? undefined : this.buckets.get(v)) ?? this.unindexed;
  }

  /** The first matching rule (or the default), without recording the event. */
  match(event: PolicyEvent): CompiledRule {
    const state = this.state;
    const list = this.candidates(event);
    outer: for (let i = 0; i < list.length; i++) {
      const rule = list[i] as CompiledRule;
      const ms = rule.matchers;
      for (let j = 0; j < ms.length; j++) if (!(ms[j] as Matcher).test(event, state)) continue outer;
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
    return rule.decisions[contextIndex(host, routeOf(event))] as Decision;
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

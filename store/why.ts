/**
 * `seawall why VM`: every decision on a VM beyond the default answer, with the rule that made it,
 * the state that made that rule fire — the stored events of its rate window, the earlier errors on
 * a repeated page — and what became of the kill or migration it asked for (and of the kill a
 * migration's onFailure started when the migration was not accepted).
 *
 * Rules are read from the policy version that decided each event: the one in force (its source
 * comes with the question), or any earlier one whose source the store kept
 * (EventStore.recordPolicy), so a reload or a restart does not lose the answer. Built on the reader
 * thread (store/reader-thread.ts), never on the event loop: an operator asks during a storm, when
 * the store is busiest, and the answer compiles policies from their YAML. Every query is an indexed
 * range with a row limit — counts too, which are lower bounds past it, and the search for
 * decisions, which reads the VM's newest WINDOW_SCAN_ROWS events of the period, as the count does
 * (`eventsAtLeast` says older ones were not searched) — and an answer covers at most 100 decisions.
 */
import {
  type CompiledPolicy,
  type CompiledRule,
  compilePolicy,
  describeAction,
  type Matcher,
  parsePolicy,
} from '../policies/index.js';
import type { StoredAction, StoreQueries, WindowAnswer } from './queries.js';
import type { StoredEvent } from './rows.js';

/** Evidence events shown per condition (the count covers them all). */
const EVIDENCE_EVENTS = 20;
/** Compiled earlier policy versions kept for answers. */
const CACHED_VERSIONS = 16;

export interface WhyQuery {
  vm: string;
  sinceMs?: number;
  limit?: number;
}

/** The policy in force: its version and the YAML it was compiled from. */
export interface PolicyText {
  version: string;
  source: string;
}

/** One condition of the rule that decided an event; state conditions carry their evidence. */
export interface WhyCondition {
  /** The matcher: `rate`, `repeatPage`, `severity`, `labels.tier` … */
  matcher: string;
  /** What the rule asks for, in the policy's terms. */
  expected: string;
  /**
   * For `rate` and `repeatPage`: the stored events that made it hold — the rate window's events
   * (this one included), or the earlier errors on the same page — the newest of them, oldest first;
   * the count is a lower bound when `atLeast` (only the scope's newest rows were read).
   */
  evidence?: WindowAnswer;
}

/** What became of the kill or migration an event asked for. */
export interface WhyOutcome extends StoredAction {
  /** false: the decision was folded into this earlier action (one per VM at a time). */
  own: boolean;
  /**
   * For a migration refused, failed or timed out: the kill its rule's onFailure started then, or
   * null (onFailure `none`, or the request was folded into a kill of the session under way).
   */
  onFailureKill: StoredAction | null;
}

/** One decision on a VM beyond the default answer, and why. */
export interface WhyEntry {
  event: StoredEvent;
  /** The decision in words, e.g. `kill (grace 30000 ms)`. */
  decision: string;
  /** null when the policy version that decided is no longer known (its source was not recorded). */
  conditions: WhyCondition[] | null;
  /** For kill and migrate: the outcome, or null when none is recorded (yet). */
  outcome: WhyOutcome | null;
}

export interface WhyResult {
  vm: string;
  /** The VM's stored events in the period asked about (every kind of decision). */
  events: number;
  /** `events` is a lower bound: the VM holds more in the period than were counted. */
  eventsAtLeast: boolean;
  /** Of the events counted: replays, answered by the plugin's fallback and decided by no rule. */
  replays: number;
  /** Of the events counted: decided, but the plugin's fallback answered before the verdict came. */
  superseded: number;
  /** The time of the VM's newest stored event, in the period or not; null: the store holds none. */
  newestMs: number | null;
  entries: WhyEntry[];
  /**
   * Older entries match too. Entries are searched for among the events counted: with
   * `eventsAtLeast`, older events of the period were not searched.
   */
  more: boolean;
}

export class WhyBuilder {
  readonly #queries: StoreQueries;
  readonly #cache = new Map<string, CompiledPolicy | null>();

  constructor(queries: StoreQueries) {
    this.#queries = queries;
  }

  /**
   * The compiled policy of `version`: compiled before, the one in force, or from the source the
   * store kept; null when its source is unknown (not remembered: it may be recorded later) or does
   * not compile (remembered).
   */
  policy(version: string, current: PolicyText | null = null): CompiledPolicy | null {
    const cached = this.#cache.get(version);
    if (cached !== undefined) return cached;
    const source = current?.version === version ? current.source : this.#queries.policySource(version);
    if (source === undefined) return null;
    const r = parsePolicy(source, `<policy ${version}>`);
    // Its own state: `why` reads evidence from the store, never the live windows.
    const compiled = r.ok ? compilePolicy(r.policy) : null;
    if (this.#cache.size >= CACHED_VERSIONS) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(version, compiled);
    return compiled;
  }

  build(q: WhyQuery, current: PolicyText | null = null): WhyResult {
    const queries = this.#queries;
    const since = q.sinceMs ?? 0;
    const { events, more } = queries.actionEvents(q.vm, since, q.limit ?? 20);
    // Counted up to a bound (store/window-queries.ts), not over all of the VM's history.
    const total = queries.window({
      vm: q.vm,
      afterMs: since - 1,
      at: { timeMs: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER },
      inclusive: true,
      limit: 1,
    });
    const fallbacks = queries.why.fallbacks(q.vm, since);
    return {
      vm: q.vm,
      events: total.count,
      eventsAtLeast: total.atLeast,
      replays: fallbacks.replays,
      superseded: fallbacks.superseded,
      newestMs: queries.why.newestMs(q.vm),
      entries: events.map((e) => this.#entry(e, current)),
      more,
    };
  }

  #entry(e: StoredEvent, current: PolicyText | null): WhyEntry {
    const queries = this.#queries;
    const policy = e.policyVersion === null ? null : this.policy(e.policyVersion, current);
    const rule = policy ? ruleNamed(policy, e.rule) : null;
    const decided = rule?.decisions.find((d) => d.action === e.action);
    return {
      event: e,
      decision: decided ? describeAction(decided) : (e.action ?? 'none'),
      conditions: rule ? rule.matchers.map((m) => condition(queries, e, m)) : null,
      outcome: outcome(queries, e),
    };
  }
}

function ruleNamed(policy: CompiledPolicy, name: string | null): CompiledRule | null {
  if (name === null) return null;
  if (name === 'default') return policy.defaultRule;
  return policy.rules.find((r) => r.name === name) ?? null;
}

function condition(queries: StoreQueries, e: StoredEvent, m: Matcher): WhyCondition {
  const c: WhyCondition = { matcher: m.name, expected: m.expected };
  const at = { timeMs: e.timeMs, id: e.id };
  if (m.reads?.kind === 'rate') {
    const { scope, windowMs } = m.reads;
    if (scope === 'page' && e.gpa === null) return c;
    c.evidence = queries.window({
      ...(scope === 'host' ? {} : { vm: e.vm }),
      ...(scope === 'page' ? { gpa: e.gpa as string } : {}),
      afterMs: e.timeMs - windowMs,
      at,
      inclusive: true,
      limit: EVIDENCE_EVENTS,
    });
  } else if (m.reads?.kind === 'repeatPage' && e.gpa !== null) {
    c.evidence = queries.window({
      vm: e.vm,
      gpa: e.gpa,
      afterMs: -1,
      at,
      inclusive: false,
      limit: EVIDENCE_EVENTS,
    });
  }
  return c;
}

function outcome(queries: StoreQueries, e: StoredEvent): WhyOutcome | null {
  if (e.action !== 'kill' && e.action !== 'migrate') return null;
  const own = queries.actionFor(e);
  const a = own ?? queries.actionBefore(e.vm, e.action, e.timeMs);
  return a ? { ...a, own: own !== undefined, onFailureKill: queries.why.onFailureKill(a) } : null;
}

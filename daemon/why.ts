/**
 * `seawall why VM`: every decision on a VM beyond the default answer, with the rule that made it,
 * the state that made that rule fire — the stored events of its rate window, the earlier errors on
 * a repeated page — and what became of the kill or migration it asked for.
 *
 * Rules are read from the policy version that decided each event: the one in force, or any earlier
 * one whose source the store kept (EventStore.recordPolicy), so a reload or a restart does not
 * lose the answer. Every query is an indexed range with a row limit, and an answer covers at most
 * 100 decisions: the control socket is served on the daemon's event loop.
 */
import type { WhyCondition, WhyEntry, WhyOutcome, WhyResult } from '../control/index.js';
import {
  type CompiledPolicy,
  type CompiledRule,
  compilePolicy,
  type DecisionProvider,
  describeAction,
  type Matcher,
  parsePolicy,
} from '../policies/index.js';
import type { EventStore, StoredEvent } from '../store/index.js';

/** Evidence events shown per condition (the count covers them all). */
const EVIDENCE_EVENTS = 20;
/** Compiled earlier policy versions kept for answers. */
const CACHED_VERSIONS = 16;

export interface WhyQuery {
  vm: string;
  sinceMs?: number;
  limit?: number;
}

export class WhyBuilder {
  readonly #current: () => DecisionProvider;
  readonly #cache = new Map<string, CompiledPolicy | null>();

  /** `current` is the policy in force (a CompiledPolicy for files and the built-in). */
  constructor(current: () => DecisionProvider) {
    this.#current = current;
  }

  /** The compiled policy of `version`, from memory or from the source the store kept. */
  policy(store: EventStore, version: string): CompiledPolicy | null {
    const current = this.#current() as Partial<CompiledPolicy>;
    if (current.version === version && Array.isArray(current.rules)) return current as CompiledPolicy;
    if (this.#cache.has(version)) return this.#cache.get(version) ?? null;
    const source = store.queries.policySource(version);
    let compiled: CompiledPolicy | null = null;
    if (source !== undefined) {
      const r = parsePolicy(source, `<policy ${version}>`);
      // Its own state: `why` reads evidence from the store, never the live windows.
      if (r.ok) compiled = compilePolicy(r.policy);
    }
    if (this.#cache.size >= CACHED_VERSIONS) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(version, compiled);
    return compiled;
  }

  build(store: EventStore, q: WhyQuery): WhyResult {
    const since = q.sinceMs ?? 0;
    const { events, more } = store.queries.actionEvents(q.vm, since, q.limit ?? 20);
    const total = store.queries.window({
      vm: q.vm,
      afterMs: since - 1,
      at: { timeMs: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER },
      inclusive: true,
      limit: 1,
    }).count;
    return { vm: q.vm, events: total, entries: events.map((e) => this.#entry(store, e)), more };
  }

  #entry(store: EventStore, e: StoredEvent): WhyEntry {
    const policy = e.policyVersion === null ? null : this.policy(store, e.policyVersion);
    const rule = policy ? ruleNamed(policy, e.rule) : null;
    const decided = rule?.decisions.find((d) => d.action === e.action);
    return {
      event: e,
      decision: decided ? describeAction(decided) : (e.action ?? 'none'),
      conditions: rule ? rule.matchers.map((m) => condition(store, e, m)) : null,
      outcome: outcome(store, e),
    };
  }
}

function ruleNamed(policy: CompiledPolicy, name: string | null): CompiledRule | null {
  if (name === null) return null;
  if (name === 'default') return policy.defaultRule;
  return policy.rules.find((r) => r.name === name) ?? null;
}

function condition(store: EventStore, e: StoredEvent, m: Matcher): WhyCondition {
  const c: WhyCondition = { matcher: m.name, expected: m.expected };
  const at = { timeMs: e.timeMs, id: e.id };
  if (m.reads?.kind === 'rate') {
    const { scope, windowMs } = m.reads;
    if (scope === 'page' && e.gpa === null) return c;
    c.evidence = store.queries.window({
      ...(scope === 'host' ? {} : { vm: e.vm }),
      ...(scope === 'page' ? { gpa: e.gpa as string } : {}),
      afterMs: e.timeMs - windowMs,
      at,
      inclusive: true,
      limit: EVIDENCE_EVENTS,
    });
  } else if (m.reads?.kind === 'repeatPage' && e.gpa !== null) {
    c.evidence = store.queries.window({
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

function outcome(store: EventStore, e: StoredEvent): WhyOutcome | null {
  if (e.action !== 'kill' && e.action !== 'migrate') return null;
  const own = store.queries.actionFor(e.bootId, e.sessionId, e.seq);
  if (own) return { ...own, own: true };
  const earlier = store.queries.actionBefore(e.vm, e.action, e.timeMs);
  return earlier ? { ...earlier, own: false } : null;
}

/**
 * Bridges policies/ to the daemon: a policy file → a compiled DecisionProvider, always compiled
 * against the daemon's one PolicyState so rate windows and repeat-page memory carry over reloads.
 */
import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import { deserialize } from 'node:v8';
import {
  BUILTIN_POLICY_YAML,
  builtinPolicy,
  type CompiledPolicy,
  type CompiledRule,
  compilePolicy,
  compileRule,
  isPolicyError,
  type PolicyRule,
  type PolicyState,
} from '../policies/index.js';
import type { PolicyLoader } from './policy-holder.js';
import { PolicyWorker } from './policy-worker.js';

/**
 * Parses and validates off the event loop (policy-worker.ts), then compiles here what is left —
 * the rules, with their GPA ranges already packed — a slice of rules per task, so that verdicts
 * go on between slices: a reload of 10,000 rules held every verdict for a quarter of a second or
 * more when the rules came and were compiled in one. Never rejects: any failure is an issue.
 *
 * `hooks` are the migration hooks the daemon has (its config's `actions.hooks`): a policy that
 * names another is refused, at start as at a reload, rather than failing every migration it asks
 * for — and running each one's `onFailure`, a kill perhaps — over a misspelt name.
 */
export function createPolicyLoader(
  state: PolicyState,
  worker = new PolicyWorker(),
  hooks: readonly string[] = [],
): PolicyLoader {
  return async (path) => {
    const r = await worker.load(path, hooks);
    if (!r.ok) return r;
    try {
      const rules: PolicyRule[] = [];
      const compiled: CompiledRule[] = [];
      const policy = { version: r.version, dryRun: r.doc.dryRun };
      for (const slice of r.rules) {
        await setImmediate();
        for (const rule of deserialize(slice) as PolicyRule[]) {
          const index = rules.push(rule) - 1;
          compiled.push(compileRule(rule, index, policy, r.gpa[index]));
        }
      }
      await setImmediate();
      const doc = { ...r.doc, rules };
      const precompiled = { version: r.version, gpa: r.gpa, rules: compiled };
      const provider = compilePolicy(doc, { state, precompiled });
      return { ok: true, provider, sha256: r.sha256, source: r.source };
    } catch (err) {
      if (isPolicyError(err)) return { ok: false, issues: [`${path}: ${err.message} [${err.code}]`] };
      return { ok: false, issues: [`${path}: cannot compile: ${(err as Error).message}`] };
    }
  };
}

export function builtinProvider(state: PolicyState): CompiledPolicy {
  return builtinPolicy({ state });
}

/** sha256 of the built-in policy's YAML, for seawall_policy_info when no file is configured. */
export const BUILTIN_SHA256 = sha256(BUILTIN_POLICY_YAML);

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

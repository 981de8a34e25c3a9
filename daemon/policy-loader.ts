/**
 * Bridges policies/ to the daemon: a policy file → a compiled DecisionProvider, always compiled
 * against the daemon's one PolicyState so rate windows and repeat-page memory carry over reloads.
 */
import {
  builtinPolicy,
  type CompiledPolicy,
  compilePolicy,
  isPolicyError,
  loadPolicyFile,
  type PolicyState,
} from '../policies/index.js';
import type { PolicyLoader } from './policy-holder.js';

export function createPolicyLoader(state: PolicyState): PolicyLoader {
  return async (path) => {
    const r = await loadPolicyFile(path);
    if (!r.ok) {
      return {
        ok: false,
        issues: r.issues.map((i) => `${path}:${i.line}: ${i.path || '(top)'}: ${i.message} [${i.code}]`),
      };
    }
    try {
      return { ok: true, provider: compilePolicy(r.policy, { state }) };
    } catch (err) {
      if (isPolicyError(err)) return { ok: false, issues: [`${path}: ${err.message} [${err.code}]`] };
      throw err;
    }
  };
}

export function builtinProvider(state: PolicyState): CompiledPolicy {
  return builtinPolicy({ state });
}

/** Bridges policies/ to the daemon: file → DecisionProvider, and the built-in policy. */
import type { DecisionProvider } from '../policies/decision.js';
import type { PolicyLoadResult } from './policy-holder.js';

export function loadPolicyProvider(path: string): PolicyLoadResult {
  return { ok: false, issues: [`${path}: policy files are not supported by this build yet`] };
}

export function builtinProvider(): DecisionProvider | null {
  return null;
}

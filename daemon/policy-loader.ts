/**
 * Bridges policies/ to the daemon: a policy file → a compiled DecisionProvider, always compiled
 * against the daemon's one PolicyState so rate windows and repeat-page memory carry over reloads.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  BUILTIN_POLICY_YAML,
  builtinPolicy,
  type CompiledPolicy,
  compilePolicy,
  isPolicyError,
  type PolicyState,
  parsePolicy,
} from '../policies/index.js';
import type { PolicyLoader } from './policy-holder.js';

export function createPolicyLoader(state: PolicyState): PolicyLoader {
  return async (path) => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      return { ok: false, issues: [`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`] };
    }
    const r = parsePolicy(text, path);
    if (!r.ok) {
      return {
        ok: false,
        issues: r.issues.map((i) => `${path}:${i.line}: ${i.path || '(top)'}: ${i.message} [${i.code}]`),
      };
    }
    try {
      return { ok: true, provider: compilePolicy(r.policy, { state }), sha256: sha256(text) };
    } catch (err) {
      if (isPolicyError(err)) return { ok: false, issues: [`${path}: ${err.message} [${err.code}]`] };
      throw err;
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

/**
 * Bridges policies/ to the daemon: a policy file → a compiled DecisionProvider, always compiled
 * against the daemon's one PolicyState so rate windows and repeat-page memory carry over reloads.
 */
import { createHash } from 'node:crypto';
import {
  BUILTIN_POLICY_YAML,
  builtinPolicy,
  type CompiledPolicy,
  compilePolicy,
  isPolicyError,
  type PolicyState,
} from '../policies/index.js';
import type { PolicyLoader } from './policy-holder.js';
import { PolicyWorker } from './policy-worker.js';

/**
 * Parses and validates off the event loop (policy-worker.ts), then compiles here what is left —
 * a small document with its GPA ranges already packed. Never rejects: any failure is an issue.
 */
export function createPolicyLoader(state: PolicyState, worker = new PolicyWorker()): PolicyLoader {
  return async (path) => {
    const r = await worker.load(path);
    if (!r.ok) return r;
    try {
      const provider = compilePolicy(r.doc, { state, precompiled: { version: r.version, gpa: r.gpa } });
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

/**
 * The built-in policy, used when the daemon runs without `--policy`: every host since 6.19 can
 * inject a data abort whose ESR KVM builds, so that is the answer to sea, nisv and mmio exits;
 * a SIGBUS is counted and recorded only (no vCPU waits on it, or the VMM handles it itself).
 * policies/examples/default.yaml holds the same text; a test keeps the two identical.
 */
import { type CompiledPolicy, type CompileOptions, compilePolicy } from './compile.js';
import { PolicyError } from './errors.js';
import { parsePolicy } from './load.js';
import type { PolicyDocument } from './schema.js';

export const BUILTIN_POLICY_YAML = `# seawall's built-in policy: what the daemon does when it runs without --policy.
version: 1
name: builtin-default
description: Inject a data abort with KVM's own ESR (every 6.19 host can); record SIGBUS reports only.
rules:
  - name: sigbus-record-only
    description: A SIGBUS is not a KVM exit; nothing can be injected after it. Count and record.
    match:
      kind: sigbus
    action:
      type: none
default:
  action:
    type: inject
    abort: data
`;

let cached: PolicyDocument | undefined;

/** The built-in policy document (validated once, then cached). */
export function builtinPolicyDocument(): PolicyDocument {
  if (cached === undefined) {
    const r = parsePolicy(BUILTIN_POLICY_YAML, '<builtin>');
    if (!r.ok) throw new PolicyError('SEAWALL_POLICY_INVALID', r.issues);
    cached = r.policy;
  }
  return cached;
}

/** The built-in policy, compiled (pass the daemon's state so windows carry over to a later --policy). */
export function builtinPolicy(options: CompileOptions = {}): CompiledPolicy {
  return compilePolicy(builtinPolicyDocument(), options);
}

/**
 * Loading a policy: YAML text or a file → a validated document, or every issue with its YAML
 * path and line. Nothing is applied from an invalid file; the caller keeps its last good policy.
 */

import * as z from 'zod';
import type { PolicyIssue } from './errors.js';
import { documentIssues, listLimitIssues } from './policy-checks.js';
import { type PolicyDocument, policySchema } from './schema.js';
import { readYamlFile } from './yaml-file.js';
import { parseYamlSource } from './yaml-source.js';

export type PolicyLoadResult =
  | {
      ok: true;
      policy: PolicyDocument;
      /** Where it came from (a path, or `<builtin>`). */
      source: string;
      /** 1-based line of a YAML path in the source (0 when absent), for messages about it. */
      lineOf: (path: readonly PropertyKey[]) => number;
    }
  | { ok: false; source: string; issues: PolicyIssue[] };

/**
 * The policy schema behind a count of the GPA ranges and matcher list values (aliases expanded):
 * over a limit, the document is not validated, and the limits are its schema issues. Validating
 * is the costly part: five million ranges, aliased from a 1.6 MB file, took 22 s of it.
 */
const boundedPolicySchema = z
  .unknown()
  .superRefine((raw, ctx) => {
    const rules = typeof raw === 'object' && raw !== null ? Reflect.get(raw, 'rules') : undefined;
    for (const issue of listLimitIssues(rules))
      ctx.addIssue({
        code: 'custom',
        path: [...issue.path],
        message: issue.message,
        params: { policyCode: issue.code },
      });
  })
  .pipe(policySchema);

/** Parses and validates policy YAML. `source` names it in results (a file path, `<builtin>`…). */
export function parsePolicy(text: string, source: string): PolicyLoadResult {
  const r = parseYamlSource(text, boundedPolicySchema, (raw) => documentIssues(raw, { listLimits: false }));
  if (!r.ok) return { ok: false, source, issues: r.issues };
  return { ok: true, policy: r.value, source, lineOf: r.locate };
}

/** Reads and parses a policy file; an unreadable file is one `unreadable` issue, not a throw. */
export async function loadPolicyFile(path: string): Promise<PolicyLoadResult> {
  const file = readYamlFile(path);
  if (!file.ok) return { ok: false, source: path, issues: [file.issue] };
  return parsePolicy(file.text, path);
}

/**
 * Checks that need the whole document rather than one value: duplicate rule names and migrate
 * hooks outside the declared list. They read the raw (unvalidated) document tolerantly, so they
 * report even when the schema also failed elsewhere: one `check` run lists every problem.
 */
import type { PathIssue } from './errors.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function hookOf(action: unknown): string | undefined {
  return isObject(action) && action.type === 'migrate' && typeof action.hook === 'string'
    ? action.hook
    : undefined;
}

/** Every migrate hook named in an action or an onUnsupported option, with its path. */
function hookUses(raw: Record<string, unknown>): { hook: string; path: (string | number)[] }[] {
  const uses: { hook: string; path: (string | number)[] }[] = [];
  const visit = (holder: unknown, base: (string | number)[]) => {
    if (!isObject(holder)) return;
    const h = hookOf(holder.action);
    if (h !== undefined) uses.push({ hook: h, path: [...base, 'action', 'hook'] });
    const options = Array.isArray(holder.onUnsupported) ? holder.onUnsupported : [holder.onUnsupported];
    options.forEach((o, i) => {
      const oh = hookOf(o);
      if (oh === undefined) return;
      const at = Array.isArray(holder.onUnsupported)
        ? [...base, 'onUnsupported', i]
        : [...base, 'onUnsupported'];
      uses.push({ hook: oh, path: [...at, 'hook'] });
    });
  };
  if (Array.isArray(raw.rules)) {
    raw.rules.forEach((r, i) => {
      visit(r, ['rules', i]);
    });
  }
  visit(raw.default, ['default']);
  return uses;
}

/** Whole-document issues of a policy, as data; tolerant of any shape. */
export function documentIssues(raw: unknown): PathIssue[] {
  if (!isObject(raw)) return [];
  const issues: PathIssue[] = [];
  if (Array.isArray(raw.rules)) {
    const first = new Map<string, number>();
    raw.rules.forEach((rule, i) => {
      if (!isObject(rule) || typeof rule.name !== 'string') return;
      const seen = first.get(rule.name);
      if (seen === undefined) first.set(rule.name, i);
      else {
        issues.push({
          code: 'duplicate-rule',
          path: ['rules', i, 'name'],
          message: `rule name '${rule.name}' is already used by rules[${seen}]; names identify decisions`,
        });
      }
      if (rule.name === 'default') {
        issues.push({
          code: 'duplicate-rule',
          path: ['rules', i, 'name'],
          message: `'default' names the policy's default; choose another rule name`,
        });
      }
    });
  }
  if (Array.isArray(raw.hooks)) {
    const declared = new Set(raw.hooks.filter((h): h is string => typeof h === 'string'));
    for (const use of hookUses(raw)) {
      if (!declared.has(use.hook)) {
        issues.push({
          code: 'unknown-hook',
          path: use.path,
          message: `hook '${use.hook}' is not declared in hooks (${[...declared].join(', ') || 'none'})`,
        });
      }
    }
  }
  return issues;
}

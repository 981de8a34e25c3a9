/**
 * Checks that need the whole document rather than one value: its size (POLICY_LIMITS), duplicate
 * rule names and migrate hooks outside the declared list. They read the raw (unvalidated)
 * document tolerantly, so they report even when the schema also failed elsewhere: one `check` run
 * lists every problem.
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
export function hookUses(raw: Record<string, unknown>): { hook: string; path: (string | number)[] }[] {
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

/**
 * What one policy may hold. Each rule is compiled on the daemon's event loop at a reload (in
 * slices, daemon/policy-loader.ts), an event that no label pins scans the unpinned rules in
 * order, and every value of an indexed label is a bucket entry built in one pass at load. Every
 * label key of a rule is a matcher that the scan may test for each event: the label keys of all
 * rules together are bounded, aliases expanded (one anchored map of label keys, aliased by many
 * rules, made a million matchers), and so are those of one rule, whose matchers are
 * compiled in one task. GPA ranges are bounded over all rules, aliases expanded as well: one
 * anchored list of 50,000 ranges aliased by 100 rules was five million ranges to validate, sort
 * and pack from a 1.6 MB file. So are the values of matcher lists (`vcpu: [...]`…), counted as
 * written, before duplicates are dropped: 100 rules aliasing a list of 30,000 took 16 s to
 * parse and validate.
 */
export const POLICY_LIMITS = {
  maxRules: 10_000,
  maxLabelValues: 100_000,
  maxLabelMatchers: 50_000,
  maxLabelsPerRule: 100,
  maxGpaRanges: 200_000,
  maxListValues: 100_000,
} as const;

/** The match keys whose value is a list of values, each a set entry when compiled. */
const LIST_MATCHERS = ['kind', 'abort', 'fsc', 'severity', 'vcpu'] as const;

/** How many items the `keys` lists of all `rules` hold, aliases expanded. Tolerant of any shape. */
function listItems(rules: unknown, keys: readonly string[]): number {
  if (!Array.isArray(rules)) return 0;
  let n = 0;
  for (const rule of rules) {
    const match = isObject(rule) && isObject(rule.match) ? rule.match : undefined;
    for (const key of keys) {
      const v = match?.[key];
      if (Array.isArray(v)) n += v.length;
    }
  }
  return n;
}

/** The GPA ranges of all `rules`, raw or validated, as the aliases expand. */
export function gpaRangeCount(rules: unknown): number {
  return listItems(rules, ['gpa']);
}

/**
 * The issues of a policy over POLICY_LIMITS.maxGpaRanges or maxListValues. parsePolicy asks them
 * before the schema runs (policies/load.ts): validating millions of items is what they spare.
 */
export function listLimitIssues(rules: unknown): PathIssue[] {
  const issues: PathIssue[] = [];
  const over = (message: string) => issues.push({ code: 'policy-limit', path: ['rules'], message });
  const gpa = gpaRangeCount(rules);
  if (gpa > POLICY_LIMITS.maxGpaRanges)
    over(
      `${gpa} GPA ranges (over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxGpaRanges} (maxGpaRanges)`,
    );
  const values = listItems(rules, LIST_MATCHERS);
  if (values > POLICY_LIMITS.maxListValues)
    over(
      `${values} values in kind, abort, fsc, severity and vcpu lists (over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxListValues} (maxListValues)`,
    );
  return issues;
}

/**
 * What the labels of one rule, raw or validated, hold: its label keys (a matcher each) and the
 * values of its `{in: [...]}` lists. Tolerant of any shape.
 */
export function labelTerms(rule: unknown): { keys: number; values: number } {
  const labels = isObject(rule) && isObject(rule.match) ? rule.match.labels : undefined;
  if (!isObject(labels)) return { keys: 0, values: 0 };
  let keys = 0;
  let values = 0;
  for (const m of Object.values(labels)) {
    keys++;
    if (isObject(m) && Array.isArray(m.in)) values += m.in.length;
  }
  return { keys, values };
}

/**
 * What compiling one rule's matchers builds, raw or validated, aliases expanded: its label terms
 * (labelTerms) and the values of its listed matchers (`vcpu: [...]`, `kind: [...]`…). A reload
 * slices rules by it (daemon/policy-worker.ts). Tolerant of any shape.
 */
export function matchTerms(rule: unknown): number {
  const t = labelTerms(rule);
  let n = t.keys + t.values;
  const match = isObject(rule) && isObject(rule.match) ? rule.match : undefined;
  if (match === undefined) return n;
  for (const key of LIST_MATCHERS) {
    const v = match[key];
    if (Array.isArray(v)) n += v.length;
  }
  return n;
}

function limitIssues(rules: unknown[]): PathIssue[] {
  const issues: PathIssue[] = [];
  const over = (message: string) => issues.push({ code: 'policy-limit', path: ['rules'], message });
  if (rules.length > POLICY_LIMITS.maxRules)
    over(
      `${rules.length} rules; a policy holds at most ${POLICY_LIMITS.maxRules} (pin rules to label values with {in: [...]} instead of a rule per value)`,
    );
  let keys = 0;
  let values = 0;
  rules.forEach((rule, i) => {
    const t = labelTerms(rule);
    keys += t.keys;
    values += t.values;
    if (t.keys > POLICY_LIMITS.maxLabelsPerRule)
      issues.push({
        code: 'policy-limit',
        path: ['rules', i, 'match', 'labels'],
        message: `${t.keys} label keys; a rule matches at most ${POLICY_LIMITS.maxLabelsPerRule}`,
      });
  });
  if (keys > POLICY_LIMITS.maxLabelMatchers)
    over(
      `${keys} label matchers (label keys over all rules, aliases expanded); a policy holds at most ${POLICY_LIMITS.maxLabelMatchers}`,
    );
  if (values > POLICY_LIMITS.maxLabelValues)
    over(
      `${values} label values in {in: [...]} lists; a policy holds at most ${POLICY_LIMITS.maxLabelValues}`,
    );
  return issues;
}

/**
 * Whole-document issues of a policy, as data; tolerant of any shape. `listLimits: false` leaves
 * out listLimitIssues, for a caller that has already reported them.
 */
export function documentIssues(raw: unknown, options: { listLimits?: boolean } = {}): PathIssue[] {
  if (!isObject(raw)) return [];
  const issues: PathIssue[] = [];
  if (Array.isArray(raw.rules)) {
    issues.push(...limitIssues(raw.rules));
    if (options.listLimits !== false) issues.push(...listLimitIssues(raw.rules));
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

/**
 * Migrate hooks the policy names that the daemon's config does not have (`actions.hooks`): the
 * daemon refuses such a policy at start and at a reload, and `seawall policy check --config` says
 * so before it gets there.
 */
export function unconfiguredHooks(raw: Record<string, unknown>, configured: readonly string[]): PathIssue[] {
  const have = new Set(configured);
  const list = configured.length > 0 ? configured.join(', ') : 'none';
  return hookUses(raw)
    .filter((u) => !have.has(u.hook))
    .map((u) => ({
      code: 'unknown-hook',
      path: u.path,
      message: `hook '${u.hook}' is not configured in the daemon (actions.hooks: ${list})`,
    }));
}

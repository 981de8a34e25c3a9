/**
 * YAML text → schema-validated value, with every problem located by YAML path and line. The
 * yaml package parses (with `LineCounter` for line numbers, `intAsBigInt` so 64-bit addresses
 * keep every bit); zod validates; zod's issue paths are mapped back to the document's nodes.
 * Shared by policy files and policy test files.
 */
import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
} from 'yaml';
import type * as z from 'zod';
import { formatPath, type PathIssue, type PolicyIssue, type PolicyIssueCode } from './errors.js';

/** The YAML node at `path`, or the deepest existing ancestor (a missing key is reported there). */
function nodeAt(doc: Document, path: readonly PropertyKey[]): Node | null {
  let node: unknown = doc.contents;
  let found: Node | null = (doc.contents as Node | null) ?? null;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg),
      );
      if (!pair) break;
      // The key's line, so `rules[2].action.iss` points at the line that says `iss:`.
      if (isScalar(pair.key)) found = pair.key;
      node = pair.value;
      if (node && typeof node === 'object' && 'range' in node && !isMap(node) && !isSeq(node))
        found = node as Node;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) break;
      node = item;
      found = item as Node;
    } else break;
  }
  return found;
}

/** 1-based line of `path` in `doc`; 0 when the document has no node for it. */
export function lineOfPath(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number {
  const node = nodeAt(doc, path);
  const offset = node?.range?.[0];
  return offset === undefined ? 0 : lines.linePos(offset).line;
}

type ZodIssue = z.core.$ZodIssue;

/**
 * Bounds on what a document may cost before it is validated. A policy of 200,000 GPA ranges is
 * about 10 MB and 3 levels deep; these leave room for that and refuse what only an attack needs:
 * an alias that expands into millions of nodes ("billion laughs"), and nesting deep enough to
 * exhaust the stack of a recursive walk.
 */
export const YAML_LIMITS = {
  /** Largest document in UTF-16 units (~bytes for the ASCII a policy is written in). */
  maxChars: 64 * 1024 * 1024,
  /** Alias nodes (`*name`) in one document. */
  maxAliases: 100,
  /** Nesting of maps and sequences. */
  maxDepth: 64,
} as const;

const limitIssue = (message: string, line = 0): PolicyIssue => ({
  code: 'yaml-limit',
  path: '',
  line,
  message,
});

/** Line of a node's first character; 0 when it has none. */
function lineOf(node: { range?: readonly number[] | null } | null, lines: LineCounter): number {
  const at = node?.range?.[0];
  return at === undefined ? 0 : lines.linePos(at).line;
}

/**
 * The first bound `doc` exceeds, or else every duplicate or refused key; empty when there is
 * neither. Walked once, without recursion. Duplicate keys are found here, a Set per map, and not by
 * the parser: its check compares each key with every earlier one of its map, and one map of 40,000
 * keys took 13 s to parse (a 5 MB file would reach the load's timeout). Keys are compared as they
 * end up in the JS object the schema sees (`1` and `"1"` are one key there, so the later would
 * silently win), and a key that is an alias or not a scalar is refused: the parser's own check
 * would not see `*k` or `[a]` as the same key as `default`, yet `*k` becomes `default`.
 */
function overLimits(doc: Document, lines: LineCounter): PolicyIssue[] {
  let aliases = 0;
  const refused: PolicyIssue[] = [];
  // At the key's line, or its value's when the key is empty.
  const keyIssue = (pair: Pair<unknown, unknown>, message: string): PolicyIssue => ({
    code: 'yaml-syntax',
    path: '',
    line: lineOf(
      (isNode(pair.key) ? pair.key : isNode(pair.value) ? pair.value : null) as Node | null,
      lines,
    ),
    message,
  });
  const stack: [unknown, number][] = [[doc.contents, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (isAlias(node)) {
      if (++aliases > YAML_LIMITS.maxAliases)
        return [limitIssue(`more than ${YAML_LIMITS.maxAliases} aliases`, lineOf(node, lines))];
    } else if (isMap(node) || isSeq(node)) {
      if (depth > YAML_LIMITS.maxDepth)
        return [limitIssue(`nested deeper than ${YAML_LIMITS.maxDepth} levels`, lineOf(node, lines))];
      const keys = isMap(node) ? new Set<string>() : null;
      for (const item of node.items as unknown[]) {
        if (isPair(item)) {
          if (keys !== null) {
            const key = jsKeyOf(item.key);
            if (isAlias(item.key)) refused.push(keyIssue(item, 'Map keys must not be aliases'));
            else if (key === null) refused.push(keyIssue(item, 'Map keys must be scalars'));
            else if (keys.has(key)) refused.push(keyIssue(item, 'Map keys must be unique'));
            else keys.add(key);
          }
          stack.push([item.key, depth + 1], [item.value, depth + 1]);
        } else stack.push([item, depth + 1]);
      }
    }
  }
  return refused.sort((a, b) => a.line - b.line);
}

/**
 * The property name a map key becomes in the parsed JS object (as yaml's toJS names it: a null
 * key is `""`, anything else `String(value)`); null for a key that is not a plain scalar.
 */
function jsKeyOf(key: unknown): string | null {
  if (!isScalar(key)) return null;
  const value: unknown = key.value;
  if (value === null) return '';
  return typeof value === 'object' || typeof value === 'function' ? null : String(value);
}

/**
 * Flattens zod issues. A union's own message is kept unless one branch failed deeper than the
 * union itself (e.g. a bad duration inside `{type: kill, grace: 5q}`): that deeper issue is the
 * one an operator needs.
 */
export function fromZodIssues(issues: readonly ZodIssue[], base: readonly PropertyKey[] = []): PathIssue[] {
  const out: PathIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'invalid_union') {
      const deeper = issue.errors
        .flat()
        .filter(
          (e) =>
            e.path.length > 0 ||
            (e.code !== 'invalid_type' && e.code !== 'invalid_value' && e.code !== 'invalid_union'),
        );
      const specific = deeper.filter((e) => e.code !== 'invalid_type');
      if (specific.length > 0 && specific.length < issue.errors.flat().length) {
        out.push(...fromZodIssues(specific.slice(0, 1), path));
        continue;
      }
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({
          code: 'unknown-key',
          path: [...path, key] as (string | number)[],
          message: `unknown key '${key}'`,
        });
      }
      continue;
    }
    const params = (issue as { params?: { policyCode?: PolicyIssueCode } }).params;
    out.push({
      code: params?.policyCode ?? 'schema',
      path: path as (string | number)[],
      message: issue.message,
    });
  }
  return out;
}

export type SourceResult<T> =
  | { ok: true; value: T; raw: unknown; locate: (path: readonly PropertyKey[]) => number }
  | { ok: false; issues: PolicyIssue[] };

export type YamlTextResult =
  | { ok: true; raw: unknown; doc: Document; lines: LineCounter }
  | { ok: false; issues: PolicyIssue[] };

/**
 * YAML `text` → its plain value, within YAML_LIMITS: the size, aliases and nesting bounded before
 * anything is expanded, and every map key a plain scalar, given once as the value names it (an
 * alias as a key, or `1` beside `"1"`, would let a later entry silently replace what a reader
 * sees). `intAsBigInt` keeps 64-bit integers whole (policies); numbers otherwise.
 */
export function readYamlText(text: string, opts: { intAsBigInt: boolean }): YamlTextResult {
  if (text.length > YAML_LIMITS.maxChars) {
    return {
      ok: false,
      issues: [limitIssue(`document of ${text.length} characters is over the ${YAML_LIMITS.maxChars} limit`)],
    };
  }
  const lines = new LineCounter();
  let doc: Document;
  try {
    // uniqueKeys: false — duplicate keys are refused by overLimits, in linear time.
    doc = parseDocument(text, {
      lineCounter: lines,
      intAsBigInt: opts.intAsBigInt,
      prettyErrors: false,
      uniqueKeys: false,
    });
  } catch (err) {
    // The parser reports most problems as doc.errors; a stack overflow on pathological input is
    // the one that escapes it.
    return { ok: false, issues: [limitIssue(`cannot parse: ${(err as Error).message}`)] };
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => ({
        code: 'yaml-syntax',
        path: '',
        line: e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line,
        message: e.message.split('\n')[0] ?? e.message,
      })),
    };
  }
  const over = overLimits(doc, lines);
  if (over.length > 0) return { ok: false, issues: over };
  try {
    return { ok: true, raw: doc.toJS({ maxAliasCount: YAML_LIMITS.maxAliases }), doc, lines };
  } catch (err) {
    // maxAliasCount counts expanded aliases, which the walk above cannot see: the expansion bound.
    return { ok: false, issues: [limitIssue(`cannot expand: ${(err as Error).message}`)] };
  }
}

/**
 * Parses YAML `text` and validates it with `schema`; `check` adds issues that need the whole
 * raw document (duplicate names, cross references) and runs even when the schema failed, so one
 * run reports everything. `after` runs only on a valid value (checks that need validated data).
 */
export function parseYamlSource<S extends z.ZodType>(
  text: string,
  schema: S,
  check: (raw: unknown) => PathIssue[] = () => [],
  after: (value: z.output<S>) => PathIssue[] = () => [],
): SourceResult<z.output<S>> {
  const read = readYamlText(text, { intAsBigInt: true });
  if (!read.ok) return read;
  const { raw, doc, lines } = read;
  const locate = (path: readonly PropertyKey[]) => lineOfPath(doc, lines, path);
  const located = (list: PathIssue[]): PolicyIssue[] =>
    list.map((i) => ({ code: i.code, path: formatPath(i.path), line: locate(i.path), message: i.message }));
  const parsed = schema.safeParse(raw);
  const issues = [...(parsed.success ? [] : fromZodIssues(parsed.error.issues)), ...check(raw)];
  if (parsed.success && issues.length === 0) issues.push(...after(parsed.data));
  if (!parsed.success || issues.length > 0) {
    const all = located(issues).sort((a, b) => a.line - b.line || a.path.localeCompare(b.path));
    return { ok: false, issues: all };
  }
  return { ok: true, value: parsed.data, raw, locate };
}

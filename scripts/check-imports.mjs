#!/usr/bin/env node
/**
 * Checks the import rules of docs/architecture.md, whose "Folders and imports" table is the one
 * place they are written: each source folder imports only the folders its row names, across
 * folders only through the target's index.ts (its public surface), type-only where the row says
 * "(types)", and the packages only the folders allowed to touch them (koffi: kvm/ and systemd/;
 * better-sqlite3: store/). Nothing outside test/ imports test/.
 *
 * Usage: node scripts/check-imports.mjs [ROOT]   (exit 0: clean, 1: violations, 2: bad table)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(process.argv[2] ?? '.');

/** Packages only some folders may import; every other package is free for all. */
const GUARDED_PACKAGES = { koffi: ['kvm', 'systemd'], 'better-sqlite3': ['store'] };

/**
 * Parses the table rows `| `folder/` | … | `a/`, `b/` (types) | ` of docs/architecture.md: the
 * first column names the folder, the last lists what it may import ("—" for nothing).
 */
function readRules() {
  const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');
  const start = doc.indexOf('<!-- import-rules:start -->');
  const end = doc.indexOf('<!-- import-rules:end -->');
  if (start < 0 || end < start) throw new Error('docs/architecture.md has no import-rules table');
  const rules = new Map();
  for (const line of doc.slice(start, end).split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4) continue;
    const folder = /^`([a-z]+)\/`$/.exec(cells[1] ?? '')?.[1];
    if (!folder) continue;
    const allowed = new Map();
    for (const m of (cells[cells.length - 2] ?? '').matchAll(/`([a-z]+)\/`( \(types\))?/g)) {
      allowed.set(m[1], m[2] ? 'types' : 'any');
    }
    rules.set(folder, allowed);
  }
  if (rules.size === 0) throw new Error('the import-rules table of docs/architecture.md has no rows');
  return rules;
}

function sourceFiles(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|mts|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every import of a file: specifier, whether it is type-only, and its line. */
function importsOf(text) {
  const found = [];
  const lineAt = (i) => text.slice(0, i).split('\n').length;
  for (const m of text.matchAll(IMPORT)) {
    const typeOnly = Boolean(m[2]) || /^\s*(import|export)\s+type\s*\{/.test(m[0]);
    found.push({ spec: m[3], typeOnly, line: lineAt(m.index) });
  }
  for (const m of text.matchAll(DYNAMIC)) found.push({ spec: m[1], typeOnly: false, line: lineAt(m.index) });
  return found;
}

function topFolder(path) {
  const rel = relative(root, path);
  return rel.startsWith('..') ? null : rel.split(sep)[0];
}

function check() {
  const rules = readRules();
  const problems = [];
  const folders = [...rules.keys(), 'test'];
  for (const folder of folders) {
    const dir = join(root, folder);
    let files = [];
    try {
      files = sourceFiles(dir, []);
    } catch {
      continue;
    }
    for (const file of files) {
      const where = relative(root, file);
      for (const imp of importsOf(readFileSync(file, 'utf8'))) {
        const at = `${where}:${imp.line}`;
        if (!imp.spec.startsWith('.')) {
          const pkg = imp.spec.startsWith('@')
            ? imp.spec.split('/').slice(0, 2).join('/')
            : imp.spec.split('/')[0];
          const only = GUARDED_PACKAGES[pkg];
          if (only && folder !== 'test' && !only.includes(folder)) {
            problems.push(
              `${at}: ${folder}/ imports '${pkg}', which only ${only.map((f) => `${f}/`).join(' and ')} may`,
            );
          }
          continue;
        }
        const target = resolve(dirname(file), imp.spec);
        const to = topFolder(target);
        if (to === null || to === folder) continue;
        if (to === 'test') {
          problems.push(`${at}: ${folder}/ imports from test/, which nothing outside test/ may`);
          continue;
        }
        if (folder === 'test') continue;
        const allowed = rules.get(folder);
        const how = allowed.get(to);
        if (how === undefined) {
          problems.push(`${at}: ${folder}/ may not import ${to}/ (docs/architecture.md)`);
          continue;
        }
        if (how === 'types' && !imp.typeOnly) {
          problems.push(`${at}: ${folder}/ may import only types from ${to}/; write 'import type'`);
        }
        const entry = relative(join(root, to), target);
        if (rules.has(to) && entry !== 'index.js' && entry !== 'index.ts') {
          problems.push(`${at}: import ${to}/ through ${to}/index.js, its public surface, not '${entry}'`);
        }
      }
    }
  }
  return problems;
}

try {
  const problems = check();
  if (problems.length > 0) {
    for (const p of problems) console.error(p);
    console.error(`import rules: ${problems.length} violation(s)`);
    process.exit(1);
  }
  console.log('import rules: clean');
} catch (err) {
  console.error(`import rules: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
}

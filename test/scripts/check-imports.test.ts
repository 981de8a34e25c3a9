/**
 * The import rules of docs/architecture.md are enforced by scripts/check-imports.mjs: it passes on
 * this tree, and it fails on a small tree that breaks each kind of rule.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'scripts', 'check-imports.mjs');
const fixtures: string[] = [];
after(() => {
  for (const d of fixtures) rmSync(d, { recursive: true, force: true });
});

function check(root: string) {
  const r = spawnSync(process.execPath, [SCRIPT, root], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A tree with the repository's own rules table and the given files. */
function fixture(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'seawall-imports-'));
  fixtures.push(root);
  const doc = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
  mkdirSync(join(root, 'docs'));
  writeFileSync(join(root, 'docs', 'architecture.md'), doc);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const CLEAN = {
  'kvm/index.ts': 'export const K = 1;\n',
  'protocol/index.ts': "import { K } from '../kvm/index.js';\nexport const P = K;\n",
  'events/index.ts': "import type { P } from '../protocol/index.js';\nexport type E = typeof P;\n",
};

test('the repository follows its own import rules', () => {
  const r = check(ROOT);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /import rules: clean/);
});

test('a clean fixture passes', () => {
  const r = check(fixture(CLEAN));
  assert.equal(r.status, 0, r.out);
});

test('each broken rule is reported with its file and line', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'a folder its row does not name',
      { 'kvm/bad.ts': "import { P } from '../protocol/index.js';\n" },
      /kvm\/bad\.ts:1: kvm\/ may not import protocol\//,
    ],
    [
      'past the public surface',
      { 'protocol/bad.ts': "import { K } from '../kvm/constants.js';\n" },
      /through kvm\/index\.js/,
    ],
    [
      'a value where only types may come',
      { 'events/bad.ts': "import { P } from '../protocol/index.js';\n" },
      /only types from protocol\//,
    ],
    [
      'koffi outside kvm/ and systemd/',
      { 'store/bad.ts': "import koffi from 'koffi';\n" },
      /store\/ imports 'koffi'/,
    ],
    [
      'SQLite outside store/',
      { 'daemon/bad.ts': "import Database from 'better-sqlite3';\n" },
      /daemon\/ imports 'better-sqlite3'/,
    ],
    [
      'test/ from source',
      { 'vmm/bad.ts': "import { x } from '../test/helpers/x.js';\n" },
      /nothing outside test\/ may/,
    ],
    [
      'a dynamic import',
      { 'metrics/bad.ts': "await import('../kvm/index.js');\n" },
      /metrics\/ may not import kvm\//,
    ],
  ];
  for (const [what, files, message] of cases) {
    const r = check(fixture({ ...CLEAN, ...files }));
    assert.equal(r.status, 1, `${what}: ${r.out}`);
    assert.match(r.out, message, what);
  }
});

test('a missing rules table is an error of its own, not a pass', () => {
  const root = fixture(CLEAN);
  writeFileSync(join(root, 'docs', 'architecture.md'), '# no table\n');
  const r = check(root);
  assert.equal(r.status, 2, r.out);
});

/**
 * One concern per file, 50–350 lines (STYLE.md): a source file past ~350 lines says why in its
 * header (a line "Longer than 350 lines: …" within its first 40 lines), or this test names it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const FOLDERS = [
  'errors',
  'kvm',
  'protocol',
  'policies',
  'events',
  'store',
  'actions',
  'attach',
  'control',
].concat(['daemon', 'cli', 'metrics', 'systemd', 'vmm', 'bench', 'scripts']);
const SOURCE = /\.(ts|mjs|c|h|rs|S)$/;
const LIMIT = 360;

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'target' || name === 'node_modules') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files(path, out);
    else if (SOURCE.test(name)) out.push(path);
  }
  return out;
}

test('every source file over ~350 lines gives its reason in its header', () => {
  const unexplained: string[] = [];
  let seen = 0;
  for (const file of FOLDERS.flatMap((f) => files(join(ROOT, f)))) {
    seen++;
    const lines = readFileSync(file, 'utf8').split('\n');
    if (lines.length <= LIMIT) continue;
    const header = lines.slice(0, 40).join('\n');
    if (!/Longer than 350 lines: \S/.test(header))
      unexplained.push(`${relative(ROOT, file)} (${lines.length} lines)`);
  }
  assert.ok(seen > 100, `only ${seen} source files found: the scan is broken`);
  assert.deepEqual(unexplained, []);
});

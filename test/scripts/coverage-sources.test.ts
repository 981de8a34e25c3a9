/**
 * scripts/coverage-sources.mjs: coverage of a file joined from several modules (what dist/bin/
 * holds) is mapped back to each module, with the lines never run counted as not covered. Real
 * tools end to end: esbuild joins two modules, Node records coverage under NODE_V8_COVERAGE, c8
 * reports it. Without the rewrite, the same data reports the unused function as covered — the
 * fault the script exists for.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `node ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The lines of src/lib.js that c8 reports as run (count > 0) and as never run. */
function libLines(work: string, cov: string): { run: number[]; notRun: number[] } {
  const report = join(work, `report-${cov}`);
  run(
    [
      join(ROOT, 'node_modules', 'c8', 'bin', 'c8.js'),
      'report',
      '--temp-directory',
      cov,
      '--report-dir',
      report,
      '--reporter',
      'json',
      '--exclude-after-remap',
      '--include',
      'src/**',
      '--include',
      'out/**',
      '--all=false',
    ],
    work,
  );
  const final = JSON.parse(readFileSync(join(report, 'coverage-final.json'), 'utf8')) as Record<
    string,
    { s: Record<string, number>; statementMap: Record<string, { start: { line: number } }> }
  >;
  const lib = final[join(work, 'src', 'lib.js')];
  assert.ok(lib, `src/lib.js is in the report: ${Object.keys(final).join(', ')}`);
  const lines = { run: [] as number[], notRun: [] as number[] };
  for (const [id, count] of Object.entries(lib.s))
    (count > 0 ? lines.run : lines.notRun).push(
      (lib.statementMap[id] as { start: { line: number } }).start.line,
    );
  return lines;
}

test('a bundle maps its coverage back to each module once its sources are named by path', () => {
  const work = mkdtempSync(join(tmpdir(), 'seawall-coverage-'));
  dirs.push(work);
  mkdirSync(join(work, 'src'));
  writeFileSync(
    join(work, 'src', 'lib.js'),
    [
      'export function used(x) {',
      '  return x + 1;',
      '}',
      'export function unused(x) {',
      '  const y = x * 2;',
      '  return y - 1;',
      '}',
      '',
    ].join('\n'),
  );
  // Both functions are in the bundle; only `used` is called.
  writeFileSync(
    join(work, 'src', 'main.js'),
    "import { unused, used } from './lib.js';\nconsole.log(process.argv[2] ? unused(1) : used(1));\n",
  );
  writeFileSync(join(work, 'package.json'), '{ "type": "module" }\n');
  run(
    [
      '--input-type=module',
      '-e',
      `import { build } from ${JSON.stringify(join(ROOT, 'node_modules', 'esbuild', 'lib', 'main.js'))};
       await build({ entryPoints: ['src/main.js'], outfile: 'out/main.js', bundle: true, format: 'esm',
         platform: 'node', sourcemap: true, logLevel: 'error' });`,
    ],
    work,
  );
  assert.equal(
    run(['out/main.js'], work, { ...process.env, NODE_V8_COVERAGE: join(work, 'cov') }).trim(),
    '2',
  );
  cpSync(join(work, 'cov'), join(work, 'cov-as-recorded'), { recursive: true });

  // As Node recorded it, c8 drops the bundle's ranges: lines 5 and 6 never ran, yet count as run.
  assert.deepEqual(libLines(work, 'cov-as-recorded').notRun, []);

  assert.match(run([join(ROOT, 'scripts', 'coverage-sources.mjs'), 'cov'], work), /rewrote 1 coverage files/);
  const lines = libLines(work, 'cov');
  assert.ok(lines.notRun.includes(5) && lines.notRun.includes(6), `not run: ${lines.notRun}`);
  assert.ok(lines.run.includes(2) && !lines.notRun.includes(2), `run: ${lines.run}`);
});

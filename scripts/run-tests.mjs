#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's own test runner and tsx as the TypeScript loader.
// Node 20's --test does not expand globs, so the file list is built here.
//
// The whole suite (no filter) also measures coverage with c8: NODE_V8_COVERAGE is inherited by
// every process the tests start — the test files, the daemons and CLIs they spawn from dist/bin/,
// the writer threads — and c8 maps dist/bin/ back to the TypeScript through the source maps. The
// floor is in .c8rc.json; below it the run fails. The coverage summary is printed before the test
// runner's own summary lines, which stay the last lines of the run. SEAWALL_COVERAGE=0 skips it.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rewriteCoverageDir } from './coverage-sources.mjs';

function collect(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = collect('test', []).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Files that hold the daemon to a latency bound run with no other file beside them
// (test/helpers/file-slots.ts); they go last, so that the files before them are not kept
// waiting. The real-KVM lane, the longest file, goes first, so that it is not what they wait for.
const ALONE = ['test/security/verdict-path.test.ts'];
const FIRST = ['test/real-kvm/lane.test.ts'];
const isAlone = (f) => ALONE.some((x) => f.endsWith(x));
const rank = (f) => (FIRST.some((x) => f.endsWith(x)) ? -1 : isAlone(f) ? 1 : 0);
files.sort((a, b) => rank(a) - rank(b));
const coverage = filters.length === 0 && process.env.SEAWALL_COVERAGE !== '0';
const COVERAGE_TMP = join('coverage', 'tmp');

// A test that hangs fails after 10 minutes (the real-KVM lane may take 8 under load) instead of
// stalling the run; its waits fail long before that, naming what they waited for
// (test/helpers/wait.ts). --test-force-exit ends each
// file once its tests are done, even if a failed test left a handle open, and the file's exit
// kills every process it started (test/helpers/processes.ts).
const args = [
  '--import',
  'tsx',
  '--import',
  './test/helpers/file-slots.ts',
  '--test',
  '--test-concurrency=2',
  '--test-timeout=600000',
  '--test-force-exit',
  '--test-reporter=spec',
  ...files,
];
const locks = mkdtempSync(join(tmpdir(), 'seawall-test-locks-'));
const env = {
  ...process.env,
  SEAWALL_TEST_LOCKS: locks,
  SEAWALL_TEST_ALONE: files.filter(isAlone).join(','),
};
if (coverage) {
  rmSync(COVERAGE_TMP, { recursive: true, force: true });
  // Sticky and writable by all, as /tmp is: some tests run a child as another user (nobody).
  mkdirSync(COVERAGE_TMP, { recursive: true });
  chmodSync(COVERAGE_TMP, 0o1777);
  env.NODE_V8_COVERAGE = resolve(COVERAGE_TMP); // absolute: children run in other directories
}

const output = [];
const runner = spawn(process.execPath, args, { env, stdio: ['inherit', 'pipe', 'inherit'] });
runner.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  output.push(chunk);
});
const status = await new Promise((resolve) => runner.once('close', (code) => resolve(code ?? 1)));
rmSync(locks, { recursive: true, force: true });

let coverageStatus = 0;
if (coverage) {
  // dist/bin/'s maps name their sources so that c8 can match them (scripts/coverage-sources.mjs).
  rewriteCoverageDir(COVERAGE_TMP);
  // c8 reads .c8rc.json: what counts, the reporters and the floor (check-coverage).
  const c8 = new URL('../node_modules/c8/bin/c8.js', import.meta.url).pathname;
  const report = spawnSync(process.execPath, [c8, 'report', '--temp-directory', COVERAGE_TMP], {
    stdio: 'inherit',
  });
  coverageStatus = report.status ?? 1;
  if (coverageStatus !== 0)
    console.log(`coverage is below the floor in .c8rc.json (c8 exit ${coverageStatus})`);
  // The runner's summary (ℹ tests … and any failing-tests list) once more, as the last lines.
  const text = Buffer.concat(output).toString('utf8');
  const summary = text.lastIndexOf('\nℹ tests ');
  if (summary >= 0) process.stdout.write(text.slice(summary + 1));
}
process.exit(status !== 0 ? status : coverageStatus);

#!/usr/bin/env node
// Runs `npm test` RUNS times in a row (default 5) beside a CPU hog of two busy loops, as the
// suite must pass on a busy 2-core machine, and after each run looks for any process the run
// left behind: every process whose environment carries this run's marker (inherited by whatever
// the tests start, daemons and their children included) or whose command line names this
// checkout. Stops at the first failed run or leftover process; exit 0 only if every run passed
// clean. Run it in a fresh clone: `node scripts/soak.mjs [RUNS]` (after `npm ci`).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const runs = Number(process.argv[2] ?? 5);
const here = resolve('.');
const hogs = [0, 1].map(() =>
  spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore', detached: true }),
);
const stopHogs = () => {
  for (const h of hogs) {
    try {
      process.kill(-h.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
};
process.on('exit', stopHogs);

/** Processes (other than this one and the hogs) that carry `marker` or name this checkout. */
function leftovers(marker) {
  const mine = new Set([process.pid, ...hogs.map((h) => h.pid)]);
  const found = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || mine.has(pid)) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ').trim();
      if (env.includes(marker) || cmd.includes(here)) found.push(`${pid} ${cmd.slice(0, 160)}`);
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return found;
}

const summary = [];
let failed = false;
for (let i = 1; i <= runs && !failed; i++) {
  const marker = `SEAWALL_SOAK_RUN=${process.pid}-${i}`;
  const started = Date.now();
  const res = spawnSync('npm', ['test'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SEAWALL_SOAK_RUN: marker.split('=')[1] },
    maxBuffer: 256 * 1024 * 1024,
  });
  const out = `${res.stdout}${res.stderr}`;
  const tail = out.slice(out.lastIndexOf('\nℹ tests ') + 1).split('\n');
  const counts = tail.filter((l) => /^ℹ (tests|pass|fail|duration_ms) /.test(l)).join(', ');
  const left = leftovers(marker);
  const line = `run ${i}: exit ${res.status} in ${Math.round((Date.now() - started) / 1000)} s (${counts}); leftover processes: ${left.length}`;
  summary.push(line);
  console.log(line);
  if (res.status !== 0) console.log(tail.join('\n'));
  for (const l of left) console.log(`  left: ${l}`);
  failed = res.status !== 0 || left.length > 0;
}
stopHogs();
console.log(summary.join('\n'));
process.exit(failed ? 1 : 0);

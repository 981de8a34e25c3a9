/**
 * The benchmark waits after each round of a daemon until it uses no CPU (bench/proc.ts
 * `untilQuiet`): a process spinning for a given amount of CPU time, then idle, is waited for until
 * it has spent it; one that never stops, even in bursts of a few ms, is given up on at the deadline
 * and counted.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { cpuMs, stillBusy, untilQuiet } from '../../bench/proc.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

/** A node process that says "spinning", spins for `cpuMs` of its own CPU time (forever if -1), then idles. */
async function spinner(cpu: number): Promise<ChildProcess> {
  const code =
    'console.log("spinning"); const until = ' +
    String(cpu) +
    '; while (until < 0 || process.cpuUsage().user / 1000 < until); setInterval(() => {}, 60_000);';
  const child = spawnOwned(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await within('the spinner to start', once(child.stdout as NodeJS.ReadableStream, 'data'));
  return child;
}

test('untilQuiet returns once the process has stopped using CPU, not before', async (t) => {
  const child = await spinner(600);
  t.after(() => killOwned(child));
  const before = stillBusy;
  // Quiet for 300 ms: a runnable spinner on a busy machine is not kept off a CPU that long.
  await untilQuiet(child.pid as number, 300, 60_000);
  assert.ok(
    cpuMs(child.pid as number).all >= 550,
    `${cpuMs(child.pid as number).all} ms of CPU when found quiet`,
  );
  assert.equal(stillBusy, before, 'not counted as still busy');
});

test('untilQuiet gives up on a process that never stops at its deadline, and counts it', async (t) => {
  const child = await spinner(-1);
  t.after(() => killOwned(child));
  const before = stillBusy;
  await untilQuiet(child.pid as number, 60, 500);
  assert.equal(stillBusy, before + 1);
});

test('untilQuiet counts as busy a process using a tenth of a CPU in short bursts', async (t) => {
  // ~1.5 ms of every 10 ms: clock ticks of 10 ms often counted none of it over 60 ms.
  const code =
    'console.log("spinning"); setInterval(() => { const t = performance.now(); ' +
    'while (performance.now() - t < 1.5); }, 10);';
  const child = spawnOwned(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => killOwned(child));
  await within('the spinner to start', once(child.stdout as NodeJS.ReadableStream, 'data'));
  const before = stillBusy;
  await untilQuiet(child.pid as number, 60, 1000);
  assert.equal(stillBusy, before + 1);
});

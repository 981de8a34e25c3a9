/**
 * A VM instance is named by the VM id, the VMM's pid and that process's start time (field 22 of
 * /proc/<pid>/stat): read from /proc for real processes, one of them with a command name that holds
 * spaces and parentheses, as the fields before the start time may.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { processStartTicks, sameInstance } from '../../actions/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { within } from '../helpers/wait.js';

/** Clock ticks since boot now, from /proc/uptime. */
function ticksNow(): number {
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return Math.ceil(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * hz);
}

test("a process's start time: after its parent's, not after now; the same at every read", (t) => {
  const sleep = requireTool(t, 'sleep', 'coreutils');
  if (!sleep) return;
  const own = processStartTicks(process.pid);
  assert.ok(own !== null && Number.isSafeInteger(own) && own >= 0, `own start time ${own}`);
  // A command name with a space and parentheses: `comm` comes from the name executed.
  const dir = mkdtempSync(join(tmpdir(), 'seawall-instance-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const odd = join(dir, 'a) (b c');
  symlinkSync(sleep, odd);
  const child = spawnOwned(odd, ['600'], { stdio: 'ignore' });
  t.after(() => killOwned(child));
  const pid = child.pid as number;
  const ticks = processStartTicks(pid);
  assert.ok(ticks !== null && ticks >= own && ticks <= ticksNow(), `child ${ticks}, parent ${own}`);
  assert.equal(processStartTicks(pid), ticks);
  assert.equal(processStartTicks(process.pid), own);
});

test('a process gone, or no process at all: no start time, so it matches nothing', async () => {
  const child = spawnOwned(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid as number;
  const before = processStartTicks(pid);
  await within('the child to exit', exitOf(child));
  const after = processStartTicks(pid);
  // Reaped: gone, unless the kernel already gave its pid to a process that started later.
  assert.ok(after === null || after !== before, `start time ${after} after exit, ${before} before`);
  for (const p of [0, -1, 1.5, Number.NaN, 2 ** 40]) assert.equal(processStartTicks(p), null, String(p));
});

test('the same instance: VM id, pid and start time, all three', () => {
  const a = { vm: 'vm-1', pid: 10, startTicks: 500 };
  assert.equal(sameInstance(a, { ...a }), true);
  assert.equal(sameInstance(a, { ...a, vm: 'vm-2' }), false);
  assert.equal(sameInstance(a, { ...a, pid: 11 }), false);
  assert.equal(sameInstance(a, { ...a, startTicks: 501 }), false, 'a reused pid');
});

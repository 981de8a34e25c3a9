/**
 * The benchmark's servers end with it, even when a signal reaches the benchmark alone: it runs
 * under a shell that stays (so nothing else kills the process group when the benchmark dies),
 * its C echo server is found among its children, and the benchmark is sent SIGTERM. Its
 * temporary directory (TMPDIR, one of the test's own here) goes with it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { removeDir } from '../helpers/daemon.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';

const BENCH = fileURLToPath(new URL('../../bench/socket-bench.ts', import.meta.url));

/** The command name and parent of each process, or nothing for one that is gone or a zombie. */
function processes(): { pid: number; comm: string; ppid: number }[] {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (state === 'Z') continue;
    out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(ppid) });
  }
  return out;
}

const alive = (pid: number) => processes().some((p) => p.pid === pid);

test('a SIGTERM to the benchmark alone leaves none of its servers running', async (t) => {
  if (!requireTool(t, 'gcc', 'gcc')) return;
  const tmp = mkdtempSync(join(tmpdir(), 'seawall-bench-test-'));
  t.after(() => removeDir(tmp));
  const shell = spawnOwned(
    'sh',
    [
      '-c',
      '"$0" --import tsx "$1" --requests 100000000 --rounds 1 > /dev/null 2>&1 & echo $!; exec sleep 600',
      process.execPath,
      BENCH,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TMPDIR: tmp } },
  );
  t.after(() => killOwned(shell, 'the benchmark and its shell'));
  const bench = await within(
    "the benchmark's pid",
    new Promise<number>((resolve) =>
      shell.stdout?.once('data', (d: Buffer) => resolve(Number.parseInt(String(d), 10))),
    ),
  );
  const echo = await until("the benchmark's C echo server to run", () =>
    processes().find((p) => p.ppid === bench && p.comm === 'echo'),
  );
  process.kill(bench, 'SIGTERM');
  await until('the benchmark to end', () => !alive(bench));
  // Before, it ran on until its process group was killed.
  await until('its C echo server to end with it', () => !alive(echo.pid), {
    state: () => `echo server ${echo.pid} still running`,
  });
  // Before, the signal left it, and at full size ~1 GB of stores in it.
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.startsWith('seawall-bench-')),
    [],
    'its temporary directory removed',
  );
});

/**
 * An exec hook's timeout and stop reach everything the hook started: it runs in its own process
 * group, which is SIGKILLed as one, and the result does not wait for a child that still holds the
 * hook's stderr. A shell wrapper around `virsh migrate` is the usual hook; its children must not
 * keep a hook slot, nor outlive it. A hook that cannot be started at all — the daemon out of
 * descriptors (the kernel's RLIMIT_NOFILE, lowered with prlimit(1)) — fails; nothing else does.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ExecHook, type HookResult, type MigrationPayload } from '../../actions/index.js';
import { Descriptors, setSoftLimit, softLimit } from '../helpers/descriptors.js';
import { groupAlive } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';

const payload = { migrationId: 'm-1', vm: { id: 'v', labels: {} } } as unknown as MigrationPayload;
const dir = mkdtempSync(join(tmpdir(), 'seawall-exec-'));
/** Process groups of the hooks started here: killed after the tests whatever happened. */
const groups: number[] = [];

/** Kills `pid` if it is still one of the processes started here (a shell or a sleep). */
function killStray(pid: number): void {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmd.startsWith('/bin/sh\0') || cmd.startsWith('sleep\0')) process.kill(pid, 'SIGKILL');
  } catch {
    // gone, as it should be
  }
}

after(() => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  // Each process by its pid too, should a hook not have had a group of its own.
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.pids')))
    for (const pid of readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean))
      killStray(Number(pid));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A shell hook that writes its pid (its process group's id: the hook is the group's leader) to a
 * file, then runs `script`, where SLEEP is a child that notes its pid and sleeps 30 s; resolves
 * with the group once the pid is there, and the hook's result.
 */
async function startShellHook(name: string, script: string, timeoutMs: number, stop?: AbortSignal) {
  const pidFile = join(dir, `${name}.pid`);
  const pids = join(dir, `${name}.pids`);
  const sleep = `/bin/sh -c 'echo $$ >> ${pids}; exec sleep 30'`;
  const hook = new ExecHook(name, {
    argv: [
      '/bin/sh',
      '-c',
      `echo $$ >> ${pids}; echo $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}; ${script.replaceAll('SLEEP', sleep)}`,
    ],
    timeoutMs,
    env: {},
  });
  const t0 = performance.now();
  const result = hook.run(payload, stop).then((r) => ({ ...r, ms: performance.now() - t0 }));
  const pgid = await until(`${name}'s pid file`, () => {
    try {
      return Number(readFileSync(pidFile, 'utf8'));
    } catch {
      return undefined;
    }
  });
  groups.push(pgid);
  return { pgid, result };
}

for (const [what, script] of [
  ['a child in the foreground', 'SLEEP; true'],
  ['a child in the background', 'SLEEP >/dev/null 2>&1 & SLEEP; true'],
  ['a background child holding stderr', 'SLEEP & SLEEP; true'],
] as const) {
  test(`a hook with ${what} times out on time, and its whole group is killed`, async () => {
    const { pgid, result } = await startShellHook(what.replaceAll(' ', '-'), script, 300);
    const r = await within('the hook result', result);
    assert.equal(r.outcome, 'timed_out');
    // 30 s sleeps: a result that waited for them would come 30 s late.
    assert.ok(r.ms < 10_000, `timed_out after ${Math.round(r.ms)} ms (timeout 300 ms)`);
    await until(`no process left in group ${pgid}`, () => !groupAlive(pgid));
  });
}

test('a hook that exits leaves nothing to wait for, even if its child still holds stderr', async () => {
  const { result } = await startShellHook('exits', 'echo refused-here >&2; SLEEP & exit 3', 20_000);
  const r = await within('the hook result', result);
  assert.equal(r.outcome, 'refused');
  assert.match(r.detail ?? '', /refused-here/);
  assert.ok(r.ms < 10_000, `answered after ${Math.round(r.ms)} ms`);
});

test('stopping ends a running hook at once, with its whole group', async () => {
  const stop = new AbortController();
  const { pgid, result } = await startShellHook('stopped', 'SLEEP & SLEEP; true', 60_000, stop.signal);
  stop.abort();
  const r = await within('the hook result', result);
  assert.deepEqual([r.outcome, r.detail], ['failed', 'daemon stopping']);
  await until(`no process left in group ${pgid}`, () => !groupAlive(pgid));
});

test('a hook that cannot be started for want of descriptors fails, and the process goes on', async (t) => {
  const prlimit = requireTool(t, 'prlimit', 'util-linux');
  if (!prlimit) return;
  const limit = softLimit();
  const hook = new ExecHook('evac', { argv: ['/bin/true'], timeoutMs: 10_000, env: {} });
  setSoftLimit(prlimit, readdirSync('/proc/self/fd').length + 32);
  const fds = new Descriptors();
  let running: Promise<HookResult>;
  try {
    fds.takeAll();
    // Its pipes cannot be made: Node emits 'error' on the child, with no pipe to it.
    running = hook.run(payload);
  } finally {
    fds.release();
    setSoftLimit(prlimit, limit);
  }
  const result = await within('the hook to fail', running);
  assert.equal(result.outcome, 'failed');
  assert.match(result.detail ?? '', /^spawn \/bin\/true: .*EMFILE/);
});

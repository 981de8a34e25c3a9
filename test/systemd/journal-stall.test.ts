/**
 * A journald that stops taking entries (stopped, or stuck on its disk) must not stop the daemon:
 * sd_journal_sendv blocks once journald's receive queue is full, and on the event loop that held
 * every verdict. In a private mount namespace, /run/systemd/journal/socket is a datagram socket
 * that nobody reads; a child logs 2,000 entries to it and reports.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { JOURNAL_QUEUE_PER_EVENT } from '../../systemd/journal.js';
import { CLI } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';

const CHILD = new URL('./children/stalled-journal-child.ts', import.meta.url).pathname;
const FLOOD_CHILD = new URL('./children/journal-flood-child.ts', import.meta.url).pathname;
const RESUMABLE = new URL('./children/resumable-journal.py', import.meta.url).pathname;

/** unshare and python3, or undefined once the test is skipped (not root, or one of them missing). */
function namespaceTools(t: TestContext, need: string): { unshare: string; python: string } | undefined {
  if (process.getuid?.() !== 0) {
    t.skip(`needs root for ${need}`);
    return undefined;
  }
  const unshare = requireTool(t, 'unshare', 'util-linux');
  const python = requireTool(t, 'python3', 'python3');
  return unshare && python ? { unshare, python } : undefined;
}

/** A directory of its own for the test, removed after it. */
function scratchDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A shell script for a new mount namespace: /run/systemd/journal/socket becomes a datagram socket
 * bound and never read (datagrams queue up to the kernel's bound, then senders block), then
 * `setup` runs and `command` is exec'd.
 */
function stalledJournal(
  python: string,
  command: string,
  setup: string[] = [],
  listener = `${python} -c "import socket,time; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind('/run/systemd/journal/socket'); time.sleep(120)"`,
): string {
  return [
    'set -e',
    'mkdir -p /run/systemd/journal',
    'mount -t tmpfs -o mode=0755 tmpfs /run/systemd/journal',
    ...setup,
    `${listener} &`,
    // Until the socket is there, at most 10 s.
    'n=0; while [ ! -S /run/systemd/journal/socket ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done',
    `exec ${command}`,
  ].join('\n');
}

test('entries to a journald that takes none: logging never blocks, the loop turns, the rest waits', async (t) => {
  const tools = namespaceTools(t, 'a mount namespace');
  if (!tools) return;
  const { unshare, python } = tools;
  const script = stalledJournal(python, `"${process.execPath}" --import tsx "${CHILD}"`);
  // In a process group of its own, killed whole (the child, stuck at exit, and the listener).
  const child = spawnOwned(unshare, ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(child));
  const line = await within(
    'the report of the child that logged to a journald taking nothing',
    new Promise<string>((resolve) =>
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve),
    ),
  );
  const out = JSON.parse(line);
  assert.equal(out.target, 'journal');
  assert.ok(out.turns > 0, 'the event loop turned while journald took nothing');
  assert.equal(out.drained, false, 'the entries are still waiting, not lost silently');
  assert.ok(out.loggedMs < 5_000, `2,000 entries logged in ${out.loggedMs} ms`);
});

/**
 * Runs the flood child with `floods` flooding VMs against a journald that takes nothing until the
 * child resumes it; checks what every flood leaves to the others and returns the entries received.
 */
async function floodWhileStalled(t: TestContext, floods: number): Promise<string[] | undefined> {
  const tools = namespaceTools(t, 'a mount namespace');
  if (!tools) return undefined;
  const { unshare, python } = tools;
  const dir = scratchDir(t, 'seawall-flood-');
  const resume = '/run/systemd/journal/resume';
  const script = stalledJournal(
    python,
    `"${process.execPath}" --import tsx "${FLOOD_CHILD}" ${resume} ${floods}`,
    [`mkfifo ${resume}`],
    `${python} "${RESUMABLE}" /run/systemd/journal/socket ${resume} ${dir}/received`,
  );
  const child = spawnOwned(unshare, ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(child));
  const report = JSON.parse(
    await within(
      "the child's report",
      new Promise<string>((resolve) =>
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve),
      ),
    ),
  );
  assert.equal(report.target, 'journal');
  assert.equal(report.drained, true);
  assert.equal(report.floods, floods);
  const received = await until("the reader's receipt of the child's last entry", () => {
    const lines = readFileSync(`${dir}/received`, { encoding: 'utf8', flag: 'a+' }).split('\n');
    return lines.some((l) => l.startsWith('MESSAGE=end|')) && lines;
  });
  const kills = received.filter((l) => /^MESSAGE=kill \d+\|/.test(l));
  assert.equal(kills.length, report.important, 'every entry that is not per-event was kept');
  const quiet = received.filter((l) => /^MESSAGE=quiet \d+\|/.test(l)).length;
  assert.equal(quiet, report.quiet, "another VM's per-event entries were kept beside the floods");
  const events = received.filter((l) => /^MESSAGE=event \d+\|/.test(l)).length;
  // The floods wait in the per-event places the quiet VM's entries left, one more in flight.
  assert.ok(
    events <= JOURNAL_QUEUE_PER_EVENT - report.quiet + 1,
    `${events} per-event entries of ${report.flooded} reached journald`,
  );
  const backlog = received.find((l) => l.includes('SEAWALL_REASON=journal_backlog'));
  assert.ok(backlog, received.slice(-5).join('\n'));
  assert.match(backlog, new RegExp(`SEAWALL_SUPPRESSED=${report.flooded - events}(\\||$)`));
  return received;
}

test("a flood of one VM's per-event entries while journald takes none leaves room for the others, another VM's too", async (t) => {
  await floodWhileStalled(t, 1);
});

test("floods of many VMs' per-event entries while journald takes none share the places, and leave a quiet VM's", async (t) => {
  const floods = 12;
  const received = await floodWhileStalled(t, floods);
  if (!received) return;
  // Max-min shares: each flooding VM keeps as many as the others, within one (and one in flight).
  const byVm = new Map<string, number>();
  for (const l of received) {
    const vm = /^MESSAGE=event \d+\|.*\bSEAWALL_VM=(flooding-\d+)(\||$)/.exec(l)?.[1];
    if (vm !== undefined) byVm.set(vm, (byVm.get(vm) ?? 0) + 1);
  }
  assert.equal(byVm.size, floods, [...byVm].join(' '));
  const counts = [...byVm.values()];
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 2, [...byVm].join(' '));
});

test('a daemon stopped while journald takes nothing exits 0, not by a signal systemd records as a failure', async (t) => {
  const tools = namespaceTools(t, 'mount and network namespaces');
  if (!tools) return;
  const { unshare, python } = tools;
  const dir = scratchDir(t, 'seawall-stall-');
  const script = stalledJournal(
    python,
    `"${process.execPath}" "${CLI}" daemon --socket ${dir}/p.sock --control-socket ${dir}/c.sock ` +
      `--state-dir ${dir}/state --no-metrics --log journal`,
    // In this network namespace alone, the first entry already finds the queue full.
    ['echo 0 > /proc/sys/net/unix/max_dgram_qlen'],
  );
  // The daemon is this process (unshare and sh exec it), in a process group of its own with the listener.
  const daemon = spawnOwned(unshare, ['-m', '-n', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(daemon));
  const exited = exitOf(daemon);
  await within(
    'the daemon to be ready',
    new Promise<void>((resolve) =>
      createInterface({ input: daemon.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        if (l.startsWith('seawall daemon ready')) resolve();
      }),
    ),
  );
  daemon.kill('SIGTERM');
  assert.deepEqual(await within('the daemon to exit', exited), { code: 0, signal: null });
});

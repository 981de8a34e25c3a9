/**
 * A reader that goes away before the output does (`seawall … | head`, a closed console): a
 * command ends quietly with status 0 instead of an unhandled EPIPE's stack trace, and the daemon
 * keeps answering its VMs with its stdout and stderr gone (it used to exit 1 at its first line), or
 * on a terminal that hung up (EIO: it died at its next line). A broken stderr alone ends nothing: the command's status and its stdout stay what they were.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { runCli } from '../daemon/e2e/run-cli.js';
import { CLI, daemonCommand, START_MS } from '../helpers/daemon.js';
import { exitOf, spawnOwned, stopOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';

const TTY = new URL('./children/on-hung-up-tty.py', import.meta.url).pathname;

/** A daemon's command in a directory of its own, each memory error a line on stderr. */
function loudDaemon(t: TestContext, prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return daemonCommand(dir, ['--no-metrics', '--log-events', 'each']);
}

/** What a daemon that lost its console still does: answers 200 events, then `status`. */
async function keepsAnswering(socket: string, control: string, context: () => string): Promise<void> {
  const sim = await runCli(['simulate', '--socket', socket, '--vms', '2', '--vcpus', '2', '--events', '200']);
  assert.equal(sim.code, 0, `${sim.stderr} ${context()}`);
  assert.match(sim.stdout, /answered by the daemon 200, fallbacks 0/);
  const status = await runCli(['status', '--control-socket', control, '--json']);
  assert.equal(status.code, 0, `${status.stderr} ${context()}`);
}

test('a command whose reader has gone ends quietly, status 0', async () => {
  // Its stdout's only reader is closed before the command starts: its first write fails EPIPE.
  const proc = spawnOwned(process.execPath, [CLI, 'completion', 'bash'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.destroy();
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exit = await within('the command to end', exitOf(proc));
  assert.deepEqual(exit, { code: 0, signal: null }, stderr);
  assert.equal(stderr, '', 'no stack trace, no message');
});

test('the daemon with its stdout and stderr gone keeps answering, and stops cleanly', async (t) => {
  // Every memory error a line on stderr, each one a write to the broken pipe.
  const { args, socket, controlSocket: control } = loudDaemon(t, 'seawall-pipe-');
  const daemon = spawnOwned(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopOwned(daemon, 'the daemon without a console'));
  daemon.stdout?.destroy();
  daemon.stderr?.destroy();
  const exited = exitOf(daemon);
  // No ready line can be read: it is ready once its control socket answers.
  await until(
    'the daemon to answer status',
    async () => {
      if (daemon.exitCode !== null) throw new Error(`the daemon exited ${daemon.exitCode}`);
      return (await runCli(['status', '--control-socket', control, '--json'])).code === 0;
    },
    { timeoutMs: START_MS, everyMs: 100 },
  );
  await keepsAnswering(socket, control, () => '');
  assert.equal(daemon.exitCode, null, 'still running');
  const exit = await stopOwned(daemon, 'the daemon without a console');
  assert.deepEqual(exit, { code: 0, signal: null });
  await exited;
});

test('a command whose stderr has gone still writes all of its stdout', async () => {
  // A usage error says so on stderr, then exits 2: the broken stderr does not turn that into 0.
  const proc = spawnOwned(process.execPath, [CLI, 'esr', 'decode', 'nonsense'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr?.destroy();
  const failed = await within('the usage error', exitOf(proc));
  assert.deepEqual(failed, { code: 2, signal: null });
  const ok = spawnOwned(process.execPath, [CLI, 'esr', 'decode', '0x92000410'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ok.stderr?.destroy();
  let stdout = '';
  ok.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  assert.deepEqual(await within('the decode', exitOf(ok)), { code: 0, signal: null });
  assert.match(stdout, /FSC\s+0x10/);
});

test('the daemon on a terminal that hangs up keeps answering, and stops cleanly', async (t) => {
  const python = requireTool(t, 'python3', 'python3');
  if (!python) return;
  const { args, socket, controlSocket: control } = loudDaemon(t, 'seawall-tty-');
  const runner = spawnOwned(python, [TTY, process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => stopOwned(runner, 'the terminal runner'));
  const said: string[] = [];
  createInterface({ input: runner.stdout as NodeJS.ReadableStream }).on('line', (l) => said.push(l));
  const started = await until(
    'the daemon on its terminal',
    () => said.find((l) => l.startsWith('started ')),
    {
      timeoutMs: START_MS,
    },
  );
  const pid = Number(started.split(' ')[1]);
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // stopped
    }
  });
  await until('the terminal to hang up', () => said.includes('hung up'));
  // Each memory error is a line on stderr, now a write that fails with EIO.
  await keepsAnswering(socket, control, () => said.join(' | '));
  process.kill(pid, 'SIGTERM');
  await until('the daemon to stop', () => said.find((l) => l.startsWith('exited ')));
  assert.ok(said.includes('exited 0'), said.join(' | '));
});

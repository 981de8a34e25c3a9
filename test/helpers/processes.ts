/**
 * Child processes a test starts. Each runs in its own process group (spawn's `detached`, i.e.
 * setsid(2)), so that killing it also kills what it started — a shell's children — and the test
 * can signal it without signalling itself. A daemon's exec hooks run in groups of their own
 * (actions/exec-hook.ts): a test that kills a daemon while a hook runs kills the hook's group too.
 *
 * Tests kill what they start in an `after`/`t.after` hook. Behind that, every group still alive
 * is SIGKILLed when the test file's process ends: at exit (the runner's --test-force-exit ends a
 * file once its tests are done, even with handles still open) and on the SIGTERM the runner
 * sends a file that ran past its timeout. A failing test therefore never leaves a process behind.
 */
import {
  type ChildProcess,
  type ExecFileOptions,
  execFile,
  type SpawnOptions,
  spawn,
} from 'node:child_process';
import { promisify } from 'node:util';
import { WAIT_MS, within } from './wait.js';

/** Leaders of the groups started here and not yet known to be empty. */
const owned = new Set<ChildProcess>();

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function killEverything(): void {
  for (const child of owned) signalGroup(child, 'SIGKILL');
  owned.clear();
}

process.on('exit', killEverything);
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killEverything();
    // The default action of the signal, now that the children are gone.
    process.kill(process.pid, signal);
  });
}

/**
 * `spawn` in a new process group that is killed at the latest when this test process ends. Its
 * stdio defaults to pipes, as spawn's does.
 */
export function spawnOwned(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  owned.add(child);
  child.once('error', () => owned.delete(child));
  child.once('exit', () => {
    // Whatever the leader left in its group (a hook it started) goes with it.
    signalGroup(child, 'SIGKILL');
    owned.delete(child);
  });
  return child;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether any process of the process group `pgid` is left (a zombie leader counts). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** The child's exit, whether it has happened already or not. */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGKILLs the child's group and waits for the child's exit. */
export async function killOwned(child: ChildProcess, what = `process ${child.pid}`): Promise<Exit> {
  signalGroup(child, 'SIGKILL');
  return within(`${what} to exit after SIGKILL`, exitOf(child));
}

/**
 * Sends `signal` to the child alone and waits up to `timeoutMs` for its exit; past that, kills
 * its group and fails naming `what`, with `state` (what the child printed, say) in the message.
 */
export async function stopOwned(
  child: ChildProcess,
  what: string,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs?: number,
  state?: () => string,
): Promise<Exit> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  try {
    return await within(`${what} to exit after ${signal}`, exitOf(child), {
      ...(timeoutMs ? { timeoutMs } : {}),
      ...(state ? { state } : {}),
    });
  } catch (err) {
    await killOwned(child, what);
    throw err;
  }
}

const execFileAsync = promisify(execFile);

/**
 * `execFile` for a program that runs to completion (a compiler, journalctl, systemd-analyze):
 * its output as strings, SIGKILLed and rejected if it has not finished by the wait deadline.
 */
export async function runFile(
  file: string,
  args: readonly string[],
  options: ExecFileOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const { stdout, stderr } = await execFileAsync(file, args, {
    timeout: WAIT_MS,
    killSignal: 'SIGKILL',
    maxBuffer: 64 << 20,
    ...options,
    encoding: 'utf8',
  });
  return { stdout, stderr };
}

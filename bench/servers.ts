/**
 * The benchmark's servers and clients as child processes: started, stopped, and none left behind;
 * and its temporary directory, removed however it ends.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const children = new Set<ChildProcess>();

/** Killed by `killAll` if still running when the benchmark ends. */
export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** SIGKILL to every tracked child still running. */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}

const atEnd: (() => void)[] = [];

/** Runs `fn` when the benchmark ends, however it ends (after its children are killed). */
export function onEnd(fn: () => void): void {
  atEnd.push(fn);
}

/** Kills the children, then runs each `onEnd` function once: at exit, on a signal, or when called. */
export function end(): void {
  killAll();
  for (const fn of atEnd.splice(0)) {
    try {
      fn();
    } catch (err) {
      process.stderr.write(`cleanup: ${(err as Error).message}\n`);
    }
  }
}

/**
 * A new directory under the system's temporary one, removed when the benchmark ends, by a signal
 * too (its stores reach ~1 GB at full size).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // A child killed a moment ago may still be leaving a file: retried.
  onEnd(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
  return dir;
}

// However the benchmark ends: a signal to it alone (not to its whole process group, as Ctrl-C is)
// takes its servers with it and removes its files, and then has its default action.
process.on('exit', end);
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
  process.once(signal, () => {
    end();
    process.kill(process.pid, signal);
  });

export interface Started {
  proc: ChildProcess;
  readyMs: number;
}

/** Starts a server and resolves when it prints its ready line; readyMs counts from the spawn. */
export function startServer(cmd: string, args: string[], readyLine: RegExp): Promise<Started> {
  const t0 = performance.now();
  const proc = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, NOTIFY_SOCKET: '' },
  });
  track(proc);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready within 60 s`)), 60_000);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (readyLine.test(l)) {
        clearTimeout(timer);
        resolve({ proc, readyMs: performance.now() - t0 });
      }
    });
    proc.once('exit', (code) => reject(new Error(`${cmd} exited ${code} before ready`)));
  });
}

/** Stops a server: SIGTERM, then SIGKILL after 30 s. */
export async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/**
 * How every benchmarked daemon logs. As shipped, under systemd, it logs to the journal, an entry
 * per event (up to its rate limit); started here with stderr, it would pick the 10 s summary
 * instead and skip that work. So each event is written as a line to stderr, which goes to
 * /dev/null; no journald is started for the benchmark.
 */
export const DAEMON_LOGGING = {
  args: ['--log', 'stderr', '--log-events', 'each'],
  what: 'an entry per event, as under journald, written to stderr (/dev/null): --log stderr --log-events each',
};

/**
 * `seawall daemon` (the build at `cli`) with its sockets and state in `state`, logging as
 * {@link DAEMON_LOGGING} says; it prints "seawall daemon ready" right after READY=1.
 */
export function startDaemon(cli: string, state: string, extra: string[]): Promise<Started> {
  mkdirSync(state, { recursive: true });
  return startServer(
    process.execPath,
    [
      cli,
      'daemon',
      '--socket',
      join(state, 'plugin.sock'),
      '--control-socket',
      join(state, 'control.sock'),
    ].concat(['--state-dir', join(state, 'state'), ...DAEMON_LOGGING.args, ...extra]),
    /^seawall daemon ready/,
  );
}

/** Compiles one of bench/c's programs. */
export function buildC(source: string, out: string): void {
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, source]);
}

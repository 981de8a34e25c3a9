/**
 * Starts the daemon as it ships (`node dist/bin/seawall.js daemon`, scripts/bundle.mjs) in a child
 * process of its own process group, on a private socket, and waits for its own readiness line.
 * Tests drive it through real sockets, and stop or kill it in an after hook;
 * test/helpers/processes.ts kills any the hooks missed when the test file ends.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { exitOf, killOwned, spawnOwned, stopOwned } from './processes.js';
import { type WaitOptions, within } from './wait.js';

export const CLI = new URL('../../dist/bin/seawall.js', import.meta.url).pathname;

/** How long a daemon may take to say it is ready: a loaded machine starts node slowly. */
export const START_MS = 60_000;

/**
 * The verdict deadline of plugin clients in tests that are not about fallbacks: there a fallback
 * would only mean that a loaded machine was slow, which is not what they test.
 */
export const PATIENT_DEADLINE_MS = 20_000;

export interface RunningDaemon {
  proc: ChildProcess;
  pid: number;
  dir: string;
  socket: string;
  controlSocket: string;
  stateDir: string;
  metricsUrl: string | null;
  /** stdout+stderr lines so far. */
  output: string[];
  /** SIGTERM and wait for exit (with a deadline, then SIGKILL); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL its process group and wait. */
  kill(): Promise<void>;
  /** Resident set size in KiB (from /proc). */
  rssKiB(): number;
  exited: Promise<number | null>;
}

export interface StartOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Reuse a directory (restart on the same socket/state). */
  dir?: string;
  metrics?: boolean;
  /** A command that execs the daemon, and its arguments (setpriv(1) to run it as the unit would). */
  execBy?: string[];
}

/** `node seawall.js daemon` on sockets and a store in `dir`, its log on stderr, with `extra` arguments. */
export function daemonCommand(dir: string, extra: readonly string[]) {
  const socket = join(dir, 'plugin.sock');
  const controlSocket = join(dir, 'control.sock');
  const stateDir = join(dir, 'state');
  const args = [
    CLI,
    'daemon',
    '--socket',
    socket,
    '--control-socket',
    controlSocket,
    '--state-dir',
    stateDir,
    '--log',
    'stderr',
    ...extra,
  ];
  return { args, socket, controlSocket, stateDir };
}

export async function startDaemon(opts: StartOptions = {}): Promise<RunningDaemon> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'seawall-d-'));
  const { args, socket, controlSocket, stateDir } = daemonCommand(dir, [
    ...(opts.metrics === false ? ['--no-metrics'] : ['--metrics', '127.0.0.1:0']),
    ...(opts.args ?? []),
  ]);
  const [command, ...prefix] = [...(opts.execBy ?? []), process.execPath];
  const proc = spawnOwned(command as string, [...prefix, ...args], {
    env: { ...process.env, NOTIFY_SOCKET: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let metricsUrl: string | null = null;
  const exited = exitOf(proc).then((e) => e.code);
  const ready = new Promise<void>((resolve, reject) => {
    const onLine = (line: string) => {
      output.push(line);
      const m = /^metrics:\s+(http:\S+)/.exec(line);
      if (m) metricsUrl = m[1] as string;
      if (line.startsWith('seawall daemon ready')) resolve();
    };
    createInterface({ input: proc.stdout! }).on('line', onLine);
    createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
    exited.then((code) => reject(new Error(`daemon exited (${code}) before ready:\n${output.join('\n')}`)));
  });
  try {
    await within(`the daemon's ready line (pid ${proc.pid})`, ready, {
      timeoutMs: START_MS,
      state: () => `output so far:\n${output.join('\n')}`,
    });
  } catch (err) {
    await killOwned(proc, 'a daemon that did not get ready');
    throw err;
  }
  const what = `daemon ${proc.pid}`;
  return {
    proc,
    pid: proc.pid as number,
    dir,
    socket,
    controlSocket,
    stateDir,
    metricsUrl,
    output,
    exited,
    async stop() {
      // A stopped (SIGSTOP) daemon would never see the SIGTERM.
      if (proc.exitCode === null) proc.kill('SIGCONT');
      // A stop that hangs says what the daemon logged up to it.
      const state = () => `its last output:\n${output.slice(-40).join('\n')}`;
      return (await stopOwned(proc, what, 'SIGTERM', undefined, state)).code;
    },
    async kill() {
      await killOwned(proc, what);
    },
    rssKiB() {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return Number(m?.[1] ?? 0);
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The Prometheus text of a /metrics URL; fails after the wait deadline. */
export async function scrape(url: string, opts: WaitOptions = {}): Promise<string> {
  return within(
    `a scrape of ${url}`,
    fetch(url).then((res) => res.text()),
    opts,
  );
}

/** Sums a metric's samples from Prometheus text, optionally filtered by a label substring. */
export function metricSum(text: string, name: string, labelFilter?: (labels: string) => boolean): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m && (!labelFilter || labelFilter(m[1] ?? ''))) sum += Number(m[2]);
  }
  return sum;
}

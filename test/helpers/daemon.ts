/**
 * Starts the compiled daemon (`node dist/cli/cli.js daemon`) in a child process on a private
 * socket, and waits for its own readiness line — no sleeps. Tests drive it through real sockets.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const CLI = new URL('../../dist/cli/cli.js', import.meta.url).pathname;

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
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
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
}

export async function startDaemon(opts: StartOptions = {}): Promise<RunningDaemon> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'seawall-d-'));
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
    ...(opts.metrics === false ? ['--no-metrics'] : ['--metrics', '127.0.0.1:0']),
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, NOTIFY_SOCKET: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let metricsUrl: string | null = null;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
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
  await ready;
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
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
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

/** Sums a metric's samples from Prometheus text, optionally filtered by a label substring. */
export async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

export function metricSum(text: string, name: string, labelFilter?: (labels: string) => boolean): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m && (!labelFilter || labelFilter(m[1] ?? ''))) sum += Number(m[2]);
  }
  return sum;
}

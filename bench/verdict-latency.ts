/**
 * Verdict-latency benchmark. In one run it measures, with the same client process and the same
 * request bytes:
 *   - a C epoll echo server (compiled here with gcc): the kernel's Unix-socket round trip;
 *   - a Node echo server: the floor for any Node server;
 *   - `seawall daemon` (compiled JavaScript, built-in policy, store, metrics and logging on)
 *     answering VERDICTs, and the same daemon with `--no-store --no-metrics`: the cost of the record.
 * Latency: one request in flight, p50/p99/p99.9. Throughput: 256 simulated vCPUs (32 VMs × 8).
 * Latency is measured in interleaved rounds with every server up, and reported as medians.
 * Usage: node --import tsx bench/verdict-latency.ts [--requests N] [--rounds R] [--throughput N] [--json]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '5' },
    throughput: { type: 'string', default: '300000' },
    json: { type: 'boolean', default: false },
  },
});
const REQUESTS = values.requests as string;
const ROUNDS = Number(values.rounds);
const TP = values.throughput as string;
const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..');
const dir = mkdtempSync(join(tmpdir(), 'seawall-bench-'));
const children: ChildProcess[] = [];

function startServer(cmd: string, args: string[], readyLine: RegExp): Promise<ChildProcess> {
  const p = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, NOTIFY_SOCKET: '' },
  });
  children.push(p);
  return new Promise((resolve, reject) => {
    createInterface({ input: p.stdout! }).on('line', (l) => {
      if (readyLine.test(l)) resolve(p);
    });
    p.once('exit', (code) => reject(new Error(`${cmd} exited ${code} before ready`)));
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function client(target: string, socket: string, mode: string, n: string): Record<string, number | string> {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', join(here, 'round-trip-client.ts'), target, socket, mode, n, '32', '8'],
    { encoding: 'utf8', cwd: root },
  );
  return JSON.parse(out.trim().split('\n').pop() as string);
}

async function main(): Promise<void> {
  const echoBin = join(dir, 'echo');
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', echoBin, join(here, 'c', 'echo.c')]);
  const targets: {
    name: string;
    kind: 'echo' | 'daemon';
    socket: string;
    start: () => Promise<ChildProcess>;
  }[] = [
    {
      name: 'C echo',
      kind: 'echo',
      socket: join(dir, 'c.sock'),
      start: () => startServer(echoBin, [join(dir, 'c.sock')], /^ready/),
    },
    {
      name: 'Node echo',
      kind: 'echo',
      socket: join(dir, 'node.sock'),
      start: () =>
        startServer(
          process.execPath,
          ['--import', 'tsx', join(here, 'node-echo.ts'), join(dir, 'node.sock')],
          /^ready/,
        ),
    },
    ...[
      { name: 'seawall daemon', extra: ['--metrics', '127.0.0.1:0'] },
      { name: 'seawall daemon, no store, no metrics', extra: ['--no-metrics', '--no-store'] },
    ].map(({ name, extra }, i) => ({
      name,
      kind: 'daemon' as const,
      socket: join(dir, `d${i}`, 'plugin.sock'),
      start: () =>
        startServer(
          process.execPath,
          [
            join(root, 'dist', 'cli', 'cli.js'),
            'daemon',
            '--socket',
            join(dir, `d${i}`, 'plugin.sock'),
            '--control-socket',
            join(dir, `d${i}`, 'control.sock'),
            '--state-dir',
            join(dir, `d${i}`, 'state'),
            '--log',
            'stderr',
            ...extra,
          ],
          /^seawall daemon ready/,
        ),
    })),
  ];
  // Every server runs for the whole benchmark, and latency is measured in interleaved rounds
  // (each round visits every target), so a slow minute of the machine hits all targets alike;
  // each figure is the median over the rounds. Throughput runs once per target, one at a time.
  const procs = [];
  for (const t of targets) procs.push(await t.start());
  const perRound = String(Math.max(1000, Math.round(Number(REQUESTS) / ROUNDS)));
  const samples = new Map<string, { p50: number[]; p99: number[]; p999: number[] }>(
    targets.map((t) => [t.name, { p50: [], p99: [], p999: [] }]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of targets) {
      const lat = client(t.kind, t.socket, 'latency', perRound);
      const s = samples.get(t.name) as { p50: number[]; p99: number[]; p999: number[] };
      s.p50.push(Number(lat.p50));
      s.p99.push(Number(lat.p99));
      s.p999.push(Number(lat['p99.9']));
    }
  }
  const rows: Record<string, unknown>[] = [];
  for (const t of targets) {
    const tp = client(t.kind, t.socket, 'throughput', TP);
    const s = samples.get(t.name) as { p50: number[]; p99: number[]; p999: number[] };
    rows.push({
      name: t.name,
      p50: median(s.p50),
      p99: median(s.p99),
      'p99.9': median(s.p999),
      perSecond: tp.perSecond,
    });
  }
  for (const proc of procs) {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
  const nodeEcho = rows.find((r) => r.name === 'Node echo') as { p50: number; p99: number };
  const daemon = rows.find((r) => r.name === 'seawall daemon') as { p50: number; p99: number };
  const bare = rows.find((r) => r.name === 'seawall daemon, no store, no metrics') as { p50: number };
  const ratios = {
    p50: daemon.p50 / nodeEcho.p50,
    p99: daemon.p99 / nodeEcho.p99,
    recordCostP50: daemon.p50 / bare.p50 - 1,
  };
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ requests: Number(REQUESTS), throughputRequests: Number(TP), rows, ratios }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      `| target | p50 µs | p99 µs | p99.9 µs | verdicts/s (256 vCPUs) |\n|---|---|---|---|---|\n`,
    );
    for (const r of rows)
      process.stdout.write(`| ${r.name} | ${r.p50} | ${r.p99} | ${r['p99.9']} | ${r.perSecond} |\n`);
    process.stdout.write(
      `\ndaemon / Node echo: p50 ${ratios.p50.toFixed(2)}×, p99 ${ratios.p99.toFixed(2)}×\n`,
    );
    process.stdout.write(
      `store + metrics add ${(ratios.recordCostP50 * 100).toFixed(1)}% to the daemon's p50\n`,
    );
  }
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

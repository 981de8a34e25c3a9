/**
 * One VM's flood against another VM's verdicts: the daemon as shipped (store, metrics, logging),
 * a C client (bench/c/client.c) keeping `--flood-inflight` events of VM `bench-0` in flight without
 * pause, and a second C client sending VM `bench-1` one event at a time. The probe's latency is
 * measured alone and during the flood, in interleaved rounds, so the baseline is taken in the same
 * run: what the flood costs a VM that does nothing unusual. The flood fills the write-ahead bound
 * (store/write-ahead.ts) when the writer thread commits fewer rows a second than the daemon answers.
 * Usage: node --import tsx bench/flood-fairness.ts [--rounds R] [--probe N] [--fill-ms MS]
 *   [--flood-inflight N] [--cli PATH-TO-ANOTHER-BUILD/dist/bin/seawall.js] [--json]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPLY_LEN, REPLY_TYPE, writeFrames } from './frames.js';
import { median, num } from './report.js';
import { buildC, end, startDaemon, stop, tempDir, track } from './servers.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    probe: { type: 'string', default: '20000' },
    'fill-ms': { type: 'string', default: '3000' },
    'flood-inflight': { type: 'string', default: '1000' },
    // Another build's CLI, to compare builds with the same clients.
    cli: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Math.max(1, Number(values.rounds));
const PROBE = Math.max(1000, Number(values.probe));
const FILL_MS = Math.max(0, Number(values['fill-ms']));
const FLOOD_INFLIGHT = Math.max(1, Number(values['flood-inflight']));
const here = new URL('.', import.meta.url).pathname;
const cli = values.cli ?? join(here, '..', 'dist', 'bin', 'seawall.js');
const dir = tempDir('seawall-flood-');
const clientBin = join(dir, 'client');

interface Probe {
  p50: number;
  p99: number;
  'p99.9': number;
  max: number;
  perSecond: number;
}

function probe(socket: string, frames: string): Probe {
  const out = execFileSync(
    clientBin,
    [socket, frames, 'latency', String(PROBE), '1', String(REPLY_TYPE.daemon), String(REPLY_LEN.daemon)],
    { encoding: 'utf8', timeout: 300_000 },
  );
  return JSON.parse(out.trim()) as Probe;
}

/** The flood: events of VM bench-0 kept in flight until it is killed. */
function flood(socket: string, frames: string): ChildProcess {
  const args = [
    socket,
    frames,
    'throughput',
    '1000000000',
    String(FLOOD_INFLIGHT),
    String(REPLY_TYPE.daemon),
    String(REPLY_LEN.daemon),
  ];
  const child = spawn(clientBin, args, { stdio: 'ignore' });
  track(child);
  return child;
}

/** A port nothing listens on now, for the daemon's /metrics. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A counter's value from the daemon's /metrics; null when the build has no such family. */
function counter(port: number, name: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    // A connection of its own each time: the daemon closes idle ones.
    const req = get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => {
        const line = text.split('\n').find((l) => l.startsWith(`${name} `));
        resolve(line === undefined ? null : Number(line.split(' ')[1]));
      });
    });
    req.once('error', reject);
  });
}

/** What the store's bound did during a flood: VM holds, and seconds every verdict waited. */
async function storeBound(port: number) {
  return {
    holds: await counter(port, 'seawall_store_session_holds_total'),
    waited: await counter(port, 'seawall_store_backpressure_seconds_total'),
  };
}

async function main(): Promise<void> {
  buildC(join(here, 'c', 'client.c'), clientBin);
  const floodFrames = join(dir, 'flood.frames');
  const probeFrames = join(dir, 'probe.frames');
  writeFrames(floodFrames, 1, true, 8, false, 0);
  writeFrames(probeFrames, 1, true, 8, false, 1);
  const state = join(dir, 'daemon');
  const port = await freePort();
  const d = await startDaemon(cli, state, ['--metrics', `127.0.0.1:${port}`]);
  const socket = join(state, 'plugin.sock');
  const alone: Probe[] = [];
  const during: Probe[] = [];
  const bound: { holds: number | null; waited: number | null }[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      alone.push(probe(socket, probeFrames));
      const f = flood(socket, floodFrames);
      await new Promise((resolve) => setTimeout(resolve, FILL_MS));
      if (f.exitCode !== null) throw new Error(`the flood client exited ${f.exitCode}`);
      const before = await storeBound(port);
      during.push(probe(socket, probeFrames));
      const after = await storeBound(port);
      const delta = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
      bound.push({ holds: delta(after.holds, before.holds), waited: delta(after.waited, before.waited) });
      await stop(f);
    }
  } finally {
    await stop(d.proc);
  }
  const row = (name: string, ps: Probe[]) => ({
    name,
    p50: median(ps.map((p) => p.p50)),
    p99: median(ps.map((p) => p.p99)),
    p999: median(ps.map((p) => p['p99.9'])),
    max: Math.max(...ps.map((p) => p.max)),
    perSecond: median(ps.map((p) => p.perSecond)),
  });
  const rows = [
    row('probe alone', alone),
    row(`probe during the flood (${FLOOD_INFLIGHT} in flight)`, during),
  ];
  if (values.json) {
    console.log(JSON.stringify({ rounds: ROUNDS, probe: PROBE, rows, alone, during, bound }));
    return;
  }
  console.log(`${ROUNDS} rounds of ${PROBE} probe events; medians over rounds, max over all (µs)`);
  console.log('| probe | p50 | p99 | p99.9 | max | verdicts/s |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${num(r.p50)} | ${num(r.p99)} | ${num(r.p999)} | ${num(r.max)} | ${num(r.perSecond, 0)} |`,
    );
  const show = (v: number | null, digits: number) =>
    v === null ? 'not counted by this build' : v.toFixed(digits);
  for (const [i, b] of bound.entries())
    console.log(
      `round ${i + 1}, during the probe: holds of the flooding VM (seawall_store_session_holds_total) ${show(b.holds, 0)}; seconds every verdict waited at the store's bound (seawall_store_backpressure_seconds_total) ${show(b.waited, 3)}`,
    );
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    end();
  });

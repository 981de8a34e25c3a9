/**
 * CPU per event on the verdict path, in process and without sockets: frame parse → typed event →
 * policy decision → verdict bytes → batch flush, with each sink set the daemon can run. It isolates
 * the daemon's own work from the kernel's socket round trip that bench/socket-bench.ts measures.
 * Usage: node --import tsx bench/pipeline-cpu.ts [--events N] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PluginSession } from '../daemon/index.js';
import {
  builtinProvider,
  createDaemonLog,
  journalSink,
  metricsSink,
  Pipeline,
  sessionInfo,
} from '../daemon/index.js';
import { EventBus, type Sink } from '../events/index.js';
import { SeawallMetrics } from '../metrics/index.js';
import { PolicyState } from '../policies/index.js';
import { DAEMON_ACCEPTS, FrameParser } from '../protocol/index.js';
import { EventStore, storeSink, WriteAhead } from '../store/index.js';
import { seaFrame } from '../vmm/index.js';

const { values } = parseArgs({
  options: { events: { type: 'string', default: '200000' }, json: { type: 'boolean', default: false } },
});
const N = Number(values.events);

const discard = { write: () => true };
const storeDir = mkdtempSync(join(tmpdir(), 'seawall-bench-store-'));
let stores = 0;
function storeSinkFor(): Sink {
  const store = new EventStore({ path: join(storeDir, `events-${stores++}.sqlite`) });
  return storeSink(store, new WriteAhead(store));
}

const variants: Record<string, () => Sink[]> = {
  'no sinks': () => [],
  journal: () => [journalSink(createDaemonLog({ mode: 'stderr', eventsPerSecond: 1000 }))],
  metrics: () => [metricsSink(new SeawallMetrics({ defaultMetrics: false }))],
  'journal + metrics': () => [
    journalSink(createDaemonLog({ mode: 'stderr', eventsPerSecond: 1000 })),
    metricsSink(new SeawallMetrics({ defaultMetrics: false })),
  ],
  'store (write-ahead + SQLite)': () => [storeSinkFor()],
  'store + journal + metrics (as shipped)': () => [
    storeSinkFor(),
    journalSink(createDaemonLog({ mode: 'stderr', eventsPerSecond: 1000 })),
    metricsSink(new SeawallMetrics({ defaultMetrics: false })),
  ],
};

function measure(sinks: Sink[]): number {
  const bus = new EventBus();
  for (const s of sinks) bus.add(s);
  const provider = builtinProvider(new PolicyState());
  const pipeline = new Pipeline({ policy: () => provider, bus });
  const hello = {
    type: 'hello' as const,
    version: 1,
    caps: 0x13,
    vmmPid: 1,
    vcpuCount: 8,
    extAbtEsrCap: 0,
    vmId: 'bench-vm',
    labels: { tier: 'bench' },
  };
  const info = sessionInfo(1n, hello, { pid: 1, uid: 0, gid: 0 }, 0);
  let ord = 0;
  const session = {
    info,
    nextOrd: () => ++ord,
    open: true,
    replayBacklog: 0,
    holdReplays() {},
    queue() {},
    flush() {},
  } as unknown as PluginSession;
  const frames = Array.from({ length: 1024 }, (_, i) =>
    seaFrame(i + 1, { vcpu: i % 8, gpa: BigInt(i) << 12n }),
  );
  const parser = new FrameParser((m) => pipeline.submit(session, m as never, process.hrtime.bigint()), {
    accept: DAEMON_ACCEPTS,
  });
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      parser.push(frames[i & 1023] as Buffer);
      pipeline.flush();
    }
  };
  run(Math.min(N, 20_000)); // warm-up: JIT and caches
  const t0 = process.hrtime.bigint();
  run(N);
  return Number(process.hrtime.bigint() - t0) / N;
}

// Journal lines go to stderr; keep the terminal clean while measuring.
process.stderr.write = discard.write as typeof process.stderr.write;
const rows = Object.entries(variants).map(([name, make]) => ({
  name,
  nsPerEvent: Math.round(measure(make())),
}));
if (values.json) process.stdout.write(`${JSON.stringify({ events: N, rows }, null, 2)}\n`);
else {
  process.stdout.write('| sinks | ns per event |\n|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.name} | ${r.nsPerEvent} |\n`);
}
rmSync(storeDir, { recursive: true, force: true });
process.exit(0);

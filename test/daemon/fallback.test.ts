/**
 * The daemon going away must not wedge guests. With a fleet running, the daemon is first frozen
 * (SIGSTOP: every vCPU that exits stalls until its deadline passes and the fallback answers), then
 * SIGKILLed (pending exits fall back at once, new ones too). After a restart on the same socket the
 * plugins reconnect by themselves and report every fallback-handled event.
 *
 * Every fallback ends one way only (vmm/plugin-client.ts): reported and acknowledged (`replayed`),
 * or answered by a VERDICT that came after its deadline (`lateVerdicts`: the guest got the
 * fallback, and the daemon, which stores an event before answering it, recorded it as decided).
 * The store outlives both daemons, so it is where "counted once" is checked: it holds every exit
 * exactly once, and the restarted daemon's counters equal the rows it stored itself.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { EventMsg } from '../../protocol/index.js';
import { STORE_FILE } from '../../store/index.js';
import { EventGenerator, parseMix } from '../../vmm/event-mix.js';
import { PluginClient, type VerdictOutcome } from '../../vmm/plugin-client.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { until, within } from '../helpers/wait.js';

const DEADLINE_MS = 300;
const VMS = 4;
const VCPUS = 4;
/** Pause between one vCPU's exits: a steady fleet, also while every exit falls back at once. */
const EXIT_GAP_MS = 10;

test('frozen, then killed: every stalled vCPU falls back at its deadline; each fallback is reported or answered late, and counted once', async (t) => {
  let d: RunningDaemon = await startDaemon();
  const dir = d.dir;
  const clients: PluginClient[] = [];
  const loops: Promise<void>[] = [];
  let stopping = false;
  let exits = 0;
  t.after(async () => {
    stopping = true;
    await Promise.all(clients.map((c) => c.close()));
    await d.kill();
    removeDir(dir);
  });
  const stats = () =>
    clients
      .map(
        (c) =>
          `${c.opts.vmId} ${c.connected ? 'up' : 'down'} ${JSON.stringify(c.stats)} kept ${c.replayQueue}`,
      )
      .join('; ');

  const mix = parseMix('sea=80,nisv=10,mmio=5,sigbus=5');
  for (let vm = 0; vm < VMS; vm++) {
    const c = new PluginClient({
      socket: d.socket,
      vmId: `fallback-${vm}`,
      vcpuCount: VCPUS,
      caps: DEFAULT_CAPS,
      deadlineMs: DEADLINE_MS,
      reconnect: { initialMs: 20, maxMs: 200 },
    });
    await c.connect();
    clients.push(c);
    for (let vcpu = 0; vcpu < VCPUS; vcpu++) {
      const gen = new EventGenerator(mix, vm * 131 + vcpu);
      loops.push(
        (async () => {
          while (!stopping) {
            exits++;
            await c.handleExit(gen.next(vcpu));
            await new Promise((r) => setTimeout(r, EXIT_GAP_MS));
          }
        })(),
      );
    }
  }
  await until('20 verdicts for every VM', () => clients.every((c) => c.stats.verdicts > 20), {
    state: stats,
  });

  // Freeze the daemon: the next exit of every vCPU stalls with nobody answering.
  const stalled = new Map<string, number>();
  clients.forEach((c, vm) => {
    c.on('fallback', (msg: EventMsg, out: VerdictOutcome) => {
      const key = `${vm}/${msg.vcpu}`;
      if (!stalled.has(key)) stalled.set(key, Number(out.latencyNs) / 1e6);
    });
  });
  d.proc.kill('SIGSTOP');
  await until(`a fallback on each of the ${VMS * VCPUS} vCPUs`, () => stalled.size === VMS * VCPUS, {
    state: () => `stalled so far: ${[...stalled.keys()].join(', ')}`,
  });
  // Still frozen, so each of these answered at its deadline: never before it. (How long after it
  // depends on the machine's load, which is for benchmarks to measure.)
  for (const [vcpu, ms] of stalled) {
    assert.ok(
      ms >= DEADLINE_MS - 1,
      `${vcpu}: fallback after ${ms} ms, before the ${DEADLINE_MS} ms deadline`,
    );
  }

  // Kill it: connections drop, every pending exit falls back, the plugins start reconnecting.
  const gone = Promise.all(clients.map((c) => within(`${c.opts.vmId} to notice`, waitDisconnect(c))));
  await d.kill();
  await gone;

  d = await startDaemon({ dir });
  await until(
    'every plugin reconnected, with its kept events reported',
    () => clients.every((c) => c.connected && c.replayQueue === 0 && c.stats.replayed > 0),
    { state: stats },
  );
  stopping = true;
  await within('the vCPU loops to end', Promise.all(loops));
  // The last exits may have fallen back too: their reports go out on the live connection.
  await until('the last kept events reported', () => clients.every((c) => c.replayQueue === 0), {
    state: stats,
  });

  const sum = (f: (c: PluginClient) => number) => clients.reduce((n, c) => n + f(c), 0);
  const fallbacks = sum((c) => c.stats.fallbacks);
  const replayed = sum((c) => c.stats.replayed);
  const late = sum((c) => c.stats.lateVerdicts);
  t.diagnostic(
    `${exits} exits: ${sum((c) => c.stats.verdicts)} verdicts in time, ${fallbacks} fallbacks ` +
      `(${replayed} replayed, ${late} answered late)`,
  );
  assert.ok(fallbacks >= VMS * VCPUS);
  assert.equal(
    sum((c) => c.stats.replayDropped),
    0,
  );
  for (const c of clients) {
    assert.equal(
      c.stats.replayed + c.stats.lateVerdicts,
      c.stats.fallbacks,
      `${c.opts.vmId}: every fallback was reported or answered late (${JSON.stringify(c.stats)})`,
    );
  }

  // The restarted daemon's own counts, then the record both daemons left.
  const text = await scrape(d.metricsUrl as string);
  const counted = metricSum(text, 'seawall_memory_errors_total');
  const via = (how: string) =>
    metricSum(text, 'seawall_fallback_events_reported_total', (l) => l.includes(`via="${how}"`));
  const reported = via('replay');
  const answeredLate = via('applied');
  await Promise.all(clients.map((c) => c.close()));
  assert.equal(await d.stop(), 0);
  const db = new Database(join(d.stateDir, STORE_FILE), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
    assert.equal(rows, exits, 'every exit is in the store');
    assert.deepEqual(
      db.prepare('SELECT vm, seq FROM events GROUP BY vm, seq HAVING COUNT(*) > 1').all(),
      [],
      'and none twice',
    );
    const replayRows = db.prepare('SELECT COUNT(*) FROM events WHERE replay = 1').pluck().get() as number;
    assert.ok(replayRows <= replayed, `${replayRows} replay rows for ${replayed} reports`);
    const boot = db.prepare('SELECT boot_id FROM sessions ORDER BY opened_ms DESC LIMIT 1').pluck().get();
    const mine = db
      .prepare(
        'SELECT COUNT(*) AS events, COALESCE(SUM(replay), 0) AS replays, ' +
          'COALESCE(SUM(replay = 0 AND fallback_action IS NOT NULL), 0) AS late FROM events WHERE boot_id = ?',
      )
      .get(boot) as { events: number; replays: number; late: number };
    assert.deepEqual(
      { events: counted, replays: reported, late: answeredLate },
      mine,
      'the restarted daemon counted exactly the events it stored, replays and those answered late among them',
    );
  } finally {
    db.close();
  }
});

function waitDisconnect(c: PluginClient): Promise<void> {
  return c.connected ? new Promise((resolve) => c.once('disconnected', () => resolve())) : Promise.resolve();
}

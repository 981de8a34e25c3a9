/**
 * The daemon going away must not wedge guests. With a fleet running, the daemon is first frozen
 * (SIGSTOP: every vCPU that exits stalls until its deadline passes and the fallback answers), then
 * SIGKILLed (pending exits fall back at once, new ones too). After a restart on the same socket the
 * plugins reconnect by themselves and report every fallback-handled event; the daemon counts them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventMsg } from '../../protocol/index.js';
import type { PluginClient, VerdictOutcome } from '../../vmm/plugin-client.js';
import { simulate } from '../../vmm/simulator.js';
import { metricSum, removeDir, scrape, startDaemon } from '../helpers/daemon.js';

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
};

test('frozen, then killed: every stalled vCPU falls back at its deadline; replays are counted after restart', async () => {
  const DEADLINE_MS = 300;
  const VMS = 4;
  const VCPUS = 4;
  let d = await startDaemon();
  const clients: PluginClient[] = [];
  let finish!: () => void;
  const stop = new Promise<void>((r) => {
    finish = r;
  });
  const run = simulate({
    socket: d.socket,
    vms: VMS,
    vcpus: VCPUS,
    durationMs: 120_000,
    rate: 2000,
    deadlineMs: DEADLINE_MS,
    until: stop,
    onClient: (c) => clients.push(c),
  });
  await until(() => clients.length === VMS && clients.every((c) => c.stats.verdicts > 20));

  // Freeze the daemon: the next exit of every vCPU stalls with nobody answering.
  const stalled = new Map<string, number>();
  clients.forEach((c, vm) => {
    c.on('fallback', (msg: EventMsg, out: VerdictOutcome) => {
      const key = `${vm}/${msg.vcpu}`;
      if (!stalled.has(key)) stalled.set(key, Number(out.latencyNs) / 1e6);
    });
  });
  d.proc.kill('SIGSTOP');
  await until(() => stalled.size === VMS * VCPUS);
  for (const [vcpu, ms] of stalled) {
    assert.ok(ms >= DEADLINE_MS - 1, `${vcpu}: fallback after ${ms} ms, before the deadline`);
    assert.ok(ms <= DEADLINE_MS + 250, `${vcpu}: fallback after ${ms} ms, well past the deadline`);
  }

  // Kill it: connections drop, every pending exit falls back, the plugins start reconnecting.
  d.proc.kill('SIGKILL');
  await d.exited;
  await until(() => clients.every((c) => !c.connected));

  d = await startDaemon({ dir: d.dir });
  await until(() => clients.every((c) => c.connected && c.replayQueue === 0 && c.stats.replayed > 0));
  finish();
  const summary = await run;
  const fallbacks = clients.reduce((n, c) => n + c.stats.fallbacks, 0);
  const replayed = clients.reduce((n, c) => n + c.stats.replayed, 0);
  assert.ok(fallbacks >= VMS * VCPUS);
  assert.equal(
    clients.reduce((n, c) => n + c.stats.replayDropped, 0),
    0,
  );
  assert.equal(replayed, fallbacks, 'every fallback-handled event was reported');
  assert.equal(summary.fallbacks, fallbacks);

  // The restarted daemon counted exactly the reported events.
  let counted = 0;
  while (counted < replayed) {
    counted = metricSum(await scrape(d.metricsUrl as string), 'seawall_fallback_events_reported_total');
    if (counted < replayed) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(counted, replayed);
  await d.stop();
  removeDir(d.dir);
});

/**
 * /metrics under a real fleet: while 4 VMs × 2 vCPUs send a mix of SEA, NISV, MMIO and SIGBUS
 * exits, the scraped text passes `promtool check metrics` (no lint findings, exit 0); after the
 * fleet ends, `seawall_memory_errors_total` summed per VM and per kind equals exactly what was sent.
 * The count of what was sent is taken at the plugin boundary: every report each simulated client
 * hands to the daemon, by VM and by the exit's type.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MEMORY_ERROR_KINDS } from '../../../metrics/index.js';
import { parseMix } from '../../../vmm/event-mix.js';
import type { ExitReport, PluginClient } from '../../../vmm/plugin-client.js';
import { simulate } from '../../../vmm/simulator.js';
import { metricSum, PATIENT_DEADLINE_MS, removeDir, scrape, startDaemon } from '../../helpers/daemon.js';
import { requireTool } from '../../helpers/tools.js';
import { within } from '../../helpers/wait.js';
import { runTool } from './run-cli.js';

const VMS = 4;
const VCPUS = 2;
const EVENTS = 4000;
const PREFIX = 'fleet';

async function promtoolCheck(promtool: string, text: string): Promise<void> {
  const r = await runTool(promtool, ['check', 'metrics'], { stdin: text });
  assert.equal(r.code, 0, `promtool check metrics exited ${r.code}:\n${r.stdout}${r.stderr}`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool check metrics reports nothing');
}

test('a mixed fleet: /metrics lints clean mid-run, memory errors by VM and kind equal what was sent', async (t) => {
  const promtool = requireTool(t, 'promtool', 'prometheus');
  if (!promtool) return;
  const d = await startDaemon();
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  assert.ok(d.metricsUrl, 'the daemon announced its metrics URL');
  const url = d.metricsUrl;

  // sent[vm][kind]: every exit a client reported, counted as it leaves the client.
  const sent = new Map<string, Map<string, number>>();
  const clients: PluginClient[] = [];
  let midRun!: () => void;
  const running = new Promise<void>((resolve) => {
    midRun = resolve;
  });
  const fleet = simulate({
    socket: d.socket,
    vms: VMS,
    vcpus: VCPUS,
    events: EVENTS,
    rate: 2000,
    mix: parseMix('sea=80,nisv=10,mmio=5,sigbus=5'),
    vmPrefix: PREFIX,
    // Long enough that no event is answered by fallback: a fallback would be kept for a replay
    // that never comes (the clients close at the end), and the counts would rightly differ.
    deadlineMs: PATIENT_DEADLINE_MS,
    onClient: (c) => {
      const byKind = new Map<string, number>();
      sent.set(c.opts.vmId, byKind);
      const handleExit = c.handleExit.bind(c);
      c.handleExit = (report: ExitReport) => {
        byKind.set(report.type, (byKind.get(report.type) ?? 0) + 1);
        if (c.stats.sent === 50) midRun();
        return handleExit(report);
      };
      clients.push(c);
    },
  });

  await within('the fleet to send 50 events from one VM', Promise.race([running, fleet]));
  const during = await scrape(url);
  assert.ok(metricSum(during, 'seawall_memory_errors_total') > 0, 'events are being counted mid-run');
  await promtoolCheck(promtool, during);

  const summary = await within('the fleet to finish', fleet);
  assert.equal(summary.sent, EVENTS);
  assert.equal(summary.fallbacks, 0, 'every event answered by the daemon');
  assert.equal(summary.answered, EVENTS);
  assert.equal(clients.length, VMS);

  const after = await scrape(url);
  await promtoolCheck(promtool, after);
  let total = 0;
  const seenKinds = new Set<string>();
  for (let i = 0; i < VMS; i++) {
    const vm = `${PREFIX}-${i}`;
    const byKind = sent.get(vm);
    assert.ok(byKind, `${vm} sent events`);
    const vmLabel = `vm="${vm}"`;
    for (const kind of MEMORY_ERROR_KINDS) {
      const want: number = byKind.get(kind) ?? 0;
      if (want > 0) seenKinds.add(kind);
      const got = metricSum(
        after,
        'seawall_memory_errors_total',
        (l) => l.includes(vmLabel) && l.includes(`kind="${kind}"`),
      );
      assert.equal(got, want, `seawall_memory_errors_total{${vmLabel},kind="${kind}"}`);
      total += want;
    }
    const vmSum = metricSum(after, 'seawall_memory_errors_total', (l) => l.includes(vmLabel));
    assert.equal(
      vmSum,
      [...byKind.values()].reduce((a, b) => a + b, 0),
      `all kinds of ${vm}`,
    );
  }
  assert.equal(total, EVENTS);
  assert.equal(metricSum(after, 'seawall_memory_errors_total'), EVENTS, 'no series of any other VM');
  // The mix really was mixed: every kind appears in the fleet's counts.
  assert.deepEqual([...seenKinds].sort(), [...MEMORY_ERROR_KINDS].sort());
});

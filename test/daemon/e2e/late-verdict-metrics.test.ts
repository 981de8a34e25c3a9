/**
 * A verdict that reaches the plugin after its deadline: the guest got the plugin's fallback, and
 * the daemon counts it in `seawall_fallback_events_reported_total{via="applied"}` once, at the
 * APPLIED `source` FALLBACK the plugin answers it with (docs/protocol.md §9 point 4), never for a
 * repeated APPLIED, one naming a seq the daemon did not answer, or a replay of an event it holds.
 * First the reviewer's case on a real plugin client and a frozen daemon, then each edge on a raw
 * connection.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ACTION, APPLIED_SOURCE, type Message } from '../../../protocol/index.js';
import { PluginClient } from '../../../vmm/plugin-client.js';
import { seaExit } from '../../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../../vmm/simulator.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../../helpers/daemon.js';
import { RawClient, seaEvent } from '../../helpers/raw-client.js';
import { nextEvent, until, within } from '../../helpers/wait.js';

let d: RunningDaemon;
const clients: { close(): unknown }[] = [];

before(async () => {
  d = await startDaemon();
});

after(async () => {
  for (const c of clients) await c.close();
  await d.stop();
  removeDir(d.dir);
});

/** The VM's fallback count reported `via` as the daemon's /metrics shows it now. */
async function fallbacks(vm: string, via: string): Promise<number> {
  const text = await scrape(d.metricsUrl as string);
  return metricSum(
    text,
    'seawall_fallback_events_reported_total',
    (labels) => labels.includes(`vm="${vm}"`) && labels.includes(`via="${via}"`),
  );
}

test('a verdict that comes after the deadline of a frozen daemon is counted as a fallback, once', async () => {
  const vm = 'late-frozen';
  const c = new PluginClient({
    socket: d.socket,
    vmId: vm,
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    deadlineMs: 300,
  });
  clients.push(c);
  await c.connect();
  // Normally in time; on a loaded machine it may come late too, and is then counted the same way.
  await within('an exit answered', c.handleExit(seaExit()));

  d.proc.kill('SIGSTOP');
  let late: Promise<unknown> | undefined;
  try {
    // The event waits in the socket; the deadline passes and the fallback answers the exit.
    const outcome = await within('the fallback at the deadline', c.handleExit(seaExit()));
    assert.equal(outcome.source, 'fallback');
    late = nextEvent(c, 'late-verdict', 'the late verdict', (seq: number) => seq === outcome.verdict.seq);
  } finally {
    d.proc.kill('SIGCONT');
  }
  // Thawed, the daemon reads the event and answers it: late, so the plugin answers APPLIED FALLBACK.
  await late;
  await until(
    'each late verdict counted once',
    async () => (await fallbacks(vm, 'applied')) === c.stats.lateVerdicts,
    { state: () => JSON.stringify(c.stats) },
  );
  assert.equal(await fallbacks(vm, 'replay'), 0, 'the connection stayed up: nothing replayed');
});

test('an APPLIED FALLBACK counts only for an event answered in its session, once', async () => {
  const vm = 'late-raw';
  const c = await RawClient.open(d.socket);
  clients.push({ close: () => c.destroy() });
  await c.hello(vm, { minor: 1, caps: 0x13 });
  const fallback = (seq: number): Message => ({
    type: 'applied',
    seq,
    result: 0,
    applied: { action: ACTION.INJECT, source: APPLIED_SOURCE.FALLBACK },
  });
  const first = seaEvent(1);
  c.send(first);
  await c.waitFor('verdict', (m) => m.seq === 1);
  // Late: counted. Repeated: not. A seq the daemon never answered: not.
  c.send(fallback(1));
  c.send(fallback(1));
  c.send(fallback(7));
  // Applied as sent, then a FALLBACK for the same seq: the event awaits nothing any more.
  c.send({ ...seaEvent(2), gpa: 0x20000n });
  await c.waitFor('verdict', (m) => m.seq === 2);
  c.send({
    type: 'applied',
    seq: 2,
    result: 0,
    applied: { action: ACTION.INJECT, source: APPLIED_SOURCE.VERDICT },
  });
  c.send(fallback(2));
  // The first event replayed as well: the store holds it, so it is not counted again.
  c.send({ ...first, replay: true, fallbackAction: ACTION.INJECT });
  // A replay of an event the daemon never saw: counted as a replay.
  c.send({ ...seaEvent(5), replay: true, fallbackAction: ACTION.INJECT, gpa: 0x30000n });
  c.send({ type: 'heartbeat', nonce: 11n });
  // Echoed once everything before it is stored and counted.
  await c.waitFor('heartbeat', (m) => m.nonce === 11n);
  assert.equal(await fallbacks(vm, 'applied'), 1);
  assert.equal(await fallbacks(vm, 'replay'), 1);
});

/**
 * The daemon's sd_notify conversation, seen by a real NOTIFY_SOCKET receiver: READY=1 only once
 * the plugin socket accepts (and never when it cannot listen), WATCHDOG=1 at half WATCHDOG_USEC and
 * none while the daemon cannot run (stopped with SIGSTOP: its event loop cannot answer, as when
 * blocked), RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload, STOPPING=1 on SIGTERM.
 *
 * The cadence is observed on the receiver's clock, so each gap carries the scheduling delays of
 * two busy processes. A single gap proves little on a loaded machine; the mean of many gaps does,
 * as timers never fire early: the bounds below tell half of WATCHDOG_USEC from a quarter of it or
 * the whole of it, with room for load.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { CLI, removeDir, startDaemon } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';
import { requireTool } from '../helpers/tools.js';
import { within } from '../helpers/wait.js';
import { startNotifyReceiver } from './notify-fixture.js';

const WATCHDOG_USEC = 400_000; // pings expected every 200 ms
const PING_MS = WATCHDOG_USEC / 2000;
const GAPS = 10;

function policyOf(rules: number): string {
  const out = ['version: 1', 'name: big', 'rules:'];
  for (let i = 0; i < rules; i++) {
    out.push(
      `  - name: r${i}`,
      `    match: { labels: { tenant: t${i} } }`,
      '    action: { type: inject, abort: data }',
    );
  }
  out.push('default:', '  action: { type: inject, abort: data }', '');
  return out.join('\n');
}

/** A receiver, and a daemon on a two-rule policy file (`policy`) that notifies it. */
async function notifyingDaemon(t: TestContext, env: NodeJS.ProcessEnv = {}) {
  const rx = await startNotifyReceiver();
  t.after(() => rx.close());
  const dir = mkdtempSync(join(tmpdir(), 'seawall-notify-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, policyOf(2));
  const d = await startDaemon({ args: ['--policy', policy], env: { ...rx.env, ...env } });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  return { rx, policy, d };
}

test('READY after the socket accepts; WATCHDOG cadence and silence while blocked; RELOADING; STOPPING', async (t) => {
  if (!requireTool(t, 'python3', 'python3')) return;
  const { rx, policy, d } = await notifyingDaemon(t, { WATCHDOG_USEC: String(WATCHDOG_USEC) });

  const ready = await rx.waitFor((m) => m.fields.READY === '1');
  assert.equal(ready.pid, d.pid, 'sent by the main process (NotifyAccess=main)');
  assert.ok(rx.messages.slice(0, ready.index).every((m) => m.fields.READY !== '1'));
  // The store's opening and the rate-state rebuild each extend the start timeout first.
  const extended = rx.messages.slice(0, ready.index).filter((m) => m.fields.EXTEND_TIMEOUT_USEC);
  assert.deepEqual(
    extended.map((m) => m.fields.EXTEND_TIMEOUT_USEC),
    ['120000000', '120000000'],
  );
  // The socket accepts: a HELLO gets its WELCOME.
  const c = await RawClient.open(d.socket);
  await c.hello('notify-vm');
  c.destroy();

  // WATCHDOG=1 every WATCHDOG_USEC/2: the mean over GAPS gaps, a 200 ms cadence that load only
  // stretches, is neither 100 ms (a quarter) nor 400 ms (the whole timeout).
  const first = await rx.waitFor((m) => m.fields.WATCHDOG === '1', { from: ready.index });
  let last = first;
  for (let i = 0; i < GAPS; i++)
    last = await rx.waitFor((m) => m.fields.WATCHDOG === '1', { from: last.index + 1 });
  const meanMs = Number(last.usec - first.usec) / 1000 / GAPS;
  assert.ok(
    meanMs >= 0.75 * PING_MS && meanMs < 1.75 * PING_MS,
    `watchdog pings every ${meanMs.toFixed(1)} ms on average over ${GAPS} gaps, expected ${PING_MS}`,
  );

  // The daemon cannot run for a while (policy parsing no longer blocks the event loop, so the
  // process is stopped instead): the watchdog must fall silent that whole time, and resume.
  const from = rx.messages.length;
  d.proc.kill('SIGSTOP');
  const stoppedFor = 1500;
  await new Promise((r) => setTimeout(r, stoppedFor)); // the length of the stop, not a wait for readiness
  d.proc.kill('SIGCONT');
  const resumed = await rx.waitFor((m) => m.fields.WATCHDOG === '1', { from });
  const pings = rx.messages
    .slice(0, resumed.index + 1)
    .filter((m) => m.fields.WATCHDOG === '1')
    .map((m) => m.usec);
  const silence = Number((pings.at(-1) as bigint) - (pings.at(-2) as bigint)) / 1000;
  assert.ok(silence >= stoppedFor - 250, `longest silence ${silence} ms while stopped ${stoppedFor} ms`);

  // A reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 once the new policy is live.
  writeFileSync(policy, policyOf(3));
  const beforeReload = rx.messages.length;
  d.proc.kill('SIGHUP');
  const reloading = await rx.waitFor((m) => m.fields.RELOADING === '1', { from: beforeReload });
  assert.match(reloading.fields.MONOTONIC_USEC ?? '', /^\d+$/);
  await rx.waitFor((m) => m.fields.READY === '1', { from: reloading.index });

  // STOPPING=1 on SIGTERM, then a clean exit.
  const beforeStop = rx.messages.length;
  const code = d.stop();
  await rx.waitFor((m) => m.fields.STOPPING === '1', { from: beforeStop });
  assert.equal(await code, 0);
});

test('a stop during a reload: no READY=1 after STOPPING=1, and no reload failure reported', async (t) => {
  if (!requireTool(t, 'python3', 'python3')) return;
  const { rx, policy, d } = await notifyingDaemon(t);
  await rx.waitFor((m) => m.fields.READY === '1');
  // A policy that takes a while to load: the stop comes while it loads.
  writeFileSync(policy, policyOf(4000));
  const before = rx.messages.length;
  d.proc.kill('SIGHUP');
  await rx.waitFor((m) => m.fields.RELOADING === '1', { from: before });
  assert.equal(await d.stop(), 0);
  const stopping = await rx.waitFor((m) => m.fields.STOPPING === '1', { from: before });
  // READY=1 after STOPPING=1 would tell systemd the daemon runs again.
  assert.deepEqual(
    rx.messages.slice(stopping.index).filter((m) => m.fields.READY === '1'),
    [],
    'no READY=1 after STOPPING=1',
  );
  const said = d.output.join('\n');
  assert.doesNotMatch(
    said,
    /policy reload failed/,
    'a reload cut short by the stop is not the policy’s failure',
  );
  assert.match(said, /policy reload cut short|policy reloaded/);
});

test('no READY=1 when the plugin socket cannot be served', async (t) => {
  if (!requireTool(t, 'python3', 'python3')) return;
  const rx = await startNotifyReceiver();
  t.after(() => rx.close());
  const dir = mkdtempSync(join(tmpdir(), 'seawall-notready-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'plugin.sock');
  // Another process already serves that path.
  const squatter = createServer().listen(sock);
  await new Promise((r) => squatter.once('listening', r));
  t.after(() => squatter.close());
  const p = spawnOwned(
    process.execPath,
    [
      CLI,
      'daemon',
      '--socket',
      sock,
      '--control-socket',
      join(dir, 'c.sock'),
      '--state-dir',
      join(dir, 'state'),
      '--no-metrics',
      '--log',
      'stderr',
    ],
    {
      env: { ...process.env, ...rx.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  p.stderr?.on('data', (c) => {
    stderr += c;
  });
  t.after(() => killOwned(p, 'a daemon that cannot listen'));
  const { code } = await within('a daemon that cannot listen to exit by itself', exitOf(p));
  assert.notEqual(code, 0);
  assert.match(stderr, /already listening/);
  assert.equal(rx.messages.filter((m) => m.fields.READY === '1').length, 0);
});

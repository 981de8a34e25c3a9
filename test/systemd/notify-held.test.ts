/**
 * A service manager that reads nothing from the notify socket — PID 1 has one receive queue for
 * every service, and reads none of it during a long daemon-reload — makes sd_notify block in
 * sendmsg(2) once the queue is full. On the event loop that held every verdict and the SIGTERM
 * handler. The receiver here fills its own queue first (notify-receiver.py --hold), so the very
 * first notification blocks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { seaEvent } from '../../vmm/sample-events.js';
import { CLI, daemonCommand, removeDir, startDaemon } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';
import { within } from '../helpers/wait.js';
import { startNotifyReceiver } from './notify-fixture.js';
import { requireOrSkip, tools } from './tools.js';

const CHILD = new URL('./children/held-notify-child.ts', import.meta.url).pathname;

test('notifications to a manager that reads nothing: the loop turns, and what arrives later is ordered and coalesced', async (t) => {
  if (!requireOrSkip(t, tools({ python3: 'python3' }))) return;
  const rx = await startNotifyReceiver('python3', { hold: true });
  t.after(() => rx.close());
  assert.ok(rx.filled > 0, 'the receiver filled its own queue');
  const child = spawnOwned(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, ...rx.env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(child, 'the held notify child'));
  const exited = exitOf(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();

  const stalled = JSON.parse(
    (await within('the child to report while its first send blocks', lines.next())).value,
  );
  assert.deepEqual(stalled, { drained: false, errors: [] }, 'the first notification is still in flight');

  rx.release();
  child.stdin!.write('go\n');
  const done = JSON.parse((await within('the child to report every notification sent', lines.next())).value);
  assert.deepEqual(done, { drained: true, errors: [] });
  assert.deepEqual(await within('the child to exit', exited), { code: 0, signal: null });

  await rx.barrier();
  const texts = rx.messages.map((m) => m.text).filter((text) => !text.startsWith('SEAWALL_TEST_FILL='));
  assert.equal(rx.messages.length - texts.length, rx.filled, 'the fill came first, whole');
  const reloading = texts.filter((text) => text.startsWith('RELOADING=1\n'));
  assert.equal(reloading.length, 1, 'two reloads queued behind a stuck send arrive as one');
  assert.match(reloading[0]!, /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
  assert.deepEqual(
    texts.slice(0, -1).map((text) => (text === reloading[0] ? 'RELOADING=1' : text)),
    [
      // In flight when the rest was queued; sent first.
      'SEAWALL_TEST_FIRST=1',
      'READY=1\nSTATUS=up',
      // One ping of fifty, and the newest of fifty statuses.
      'WATCHDOG=1',
      'STATUS=s49',
      'RELOADING=1',
      'READY=1\nSTATUS=r2',
      'STOPPING=1\nSTATUS=bye',
    ],
  );
});

test('a daemon whose manager reads nothing answers every event, and stops on SIGTERM with exit 0', async (t) => {
  if (!requireOrSkip(t, tools({ python3: 'python3' }))) return;
  const rx = await startNotifyReceiver('python3', { hold: true });
  t.after(() => rx.close());
  // Pings every 100 ms, all queued behind the first notification of the start-up, which blocks.
  const d = await startDaemon({ metrics: false, env: { ...rx.env, WATCHDOG_USEC: '200000' } });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const c = await RawClient.open(d.socket);
  t.after(() => c.destroy());
  await c.hello('held-vm');
  for (let seq = 1; seq <= 20; seq++) {
    c.send(seaEvent(seq, { timeNs: BigInt(Date.now()) * 1_000_000n, gpa: BigInt(seq) << 12n }));
    await c.waitFor('verdict', (v) => v.seq === seq);
  }
  c.destroy();
  // The stop does not wait on STOPPING=1 past its deadline, and ends as a clean stop, not by a
  // signal systemd would record as a failure.
  assert.equal(await d.stop(), 0);
  assert.equal(d.proc.signalCode, null);
  // The manager never read: none of the daemon's notifications got through the full queue.
  assert.equal(rx.messages.length, 0);
});

/** A start that fails in the service (its policy) and before there is one (its configuration). */
const START_FAILURES = {
  policy: { args: (dir: string) => ['--policy', join(dir, 'missing.yaml')], says: /cannot start: policy / },
  config: { args: (dir: string) => ['--config', join(dir, 'missing.yaml')], says: /missing\.yaml/ },
};

test('a start that fails while the manager reads nothing ends with exit 1, its STATUS= left behind', async (t) => {
  if (!requireOrSkip(t, tools({ python3: 'python3' }))) return;
  const rx = await startNotifyReceiver('python3', { hold: true });
  t.after(() => rx.close());
  for (const [name, c] of Object.entries(START_FAILURES))
    await t.test(name, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'seawall-held-'));
      t.after(() => removeDir(dir));
      const { args } = daemonCommand(dir, ['--no-metrics', ...c.args(dir)]);
      assert.equal(args[0], CLI);
      const d = spawnOwned(process.execPath, args, {
        env: { ...process.env, ...rx.env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      t.after(() => killOwned(d, 'the daemon that cannot start'));
      let stderr = '';
      d.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      // The STATUS= that says why is held in sendmsg(2); the process must not wait for it forever.
      assert.deepEqual(await within('the daemon that cannot start to exit', exitOf(d)), {
        code: 1,
        signal: null,
      });
      assert.match(stderr, c.says);
      assert.equal(rx.messages.length, 0);
    });
});

import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { isSystemdError } from '../../systemd/errors.js';
import { createNotifier, STATUS_MAX_BYTES, statusText } from '../../systemd/notify.js';
import { createWatchdog } from '../../systemd/watchdog.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import type { NotifyMessage } from './notify-fixture.js';
import { startNotifyReceiver } from './notify-fixture.js';
import { requireOrSkip, tools } from './tools.js';

const CHILD = new URL('./children/notify-child.ts', import.meta.url).pathname;
const WATCHDOG_USEC = 300_000;
const PING_MS = WATCHDOG_USEC / 2000;
/** Gaps averaged: one gap on the receiver's clock carries two processes' scheduling delays. */
const GAPS = 10;

const isPing = (m: NotifyMessage): boolean => m.fields.WATCHDOG === '1';

test('without NOTIFY_SOCKET every notifier method is a no-op', () => {
  const notifier = createNotifier({});
  assert.equal(notifier.enabled, false);
  notifier.ready('up');
  notifier.reloading();
  notifier.failed('down', new Error('x'));
  notifier.watchdogPing();
  const watchdog = createWatchdog(notifier, { WATCHDOG_USEC: '1000000' });
  assert.equal(watchdog.enabled, false);
  watchdog.start();
  assert.equal(watchdog.running, false);
});

test('an env naming another socket than the process environment is refused', () => {
  assert.throws(
    () => createNotifier({ NOTIFY_SOCKET: '/nonexistent/other.sock' }),
    (err) => isSystemdError(err, 'SEAWALL_SYSTEMD_ENV_MISMATCH'),
  );
});

test('NOTIFY_SOCKET without libsystemd reports once and degrades to a no-op', () => {
  const saved = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = '/run/seawall-test/none.sock';
  try {
    const codes: string[] = [];
    const notifier = createNotifier(process.env, {
      library: 'libsystemd-absent.so.0',
      onError: (err) => codes.push(err.code),
    });
    notifier.ready();
    notifier.watchdogPing();
    assert.equal(notifier.enabled, false);
    assert.deepEqual(codes, ['SEAWALL_SYSTEMD_UNAVAILABLE']);
  } finally {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
  }
});

test('a child sends READY, STATUS, RELOADING with MONOTONIC_USEC, a failure, STOPPING and paced watchdog pings', async (t) => {
  if (!requireOrSkip(t, tools({ python3: 'python3' }))) return;
  const rx = await startNotifyReceiver();
  const child = spawnOwned(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, ...rx.env, WATCHDOG_USEC: String(WATCHDOG_USEC) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(async () => {
    await killOwned(child, 'the notify child');
    await rx.close();
  });
  const acks = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  async function command(line: string): Promise<void> {
    child.stdin!.write(`${line}\n`);
    const ack = await within(`the child's ack of '${line}'`, acks.next());
    assert.equal(ack.value, `done ${line.split(' ')[0]}`);
  }

  await command('info');
  const info = await rx.waitFor((m) => m.fields.STATUS?.startsWith('enabled=') === true);
  assert.equal(info.fields.STATUS, `enabled=true watchdog=true interval=${PING_MS} errors=`);
  assert.equal(info.pid, child.pid, 'the sender is the child itself (NotifyAccess=main)');

  await command('ready up');
  const ready = await rx.waitFor((m) => m.fields.READY === '1');
  assert.equal(ready.text, 'READY=1\nSTATUS=up');

  await command('reloading');
  const reloading = await rx.waitFor((m) => m.fields.RELOADING === '1');
  assert.deepEqual(Object.keys(reloading.fields), ['RELOADING', 'MONOTONIC_USEC']);
  const stamp = BigInt(reloading.fields.MONOTONIC_USEC!);
  // Same clock: stamped before it was received, and not long before.
  assert.ok(stamp <= reloading.usec, `MONOTONIC_USEC ${stamp} after receipt ${reloading.usec}`);
  assert.ok(reloading.usec - stamp < 5_000_000n, 'MONOTONIC_USEC is CLOCK_MONOTONIC');

  const firstPing = rx.messages.length;
  await command('start');
  // Timers never fire early, and load only stretches them: the mean tells PING_MS from a half or
  // a double of it.
  const first = await rx.waitFor(isPing, { from: firstPing });
  let last = first;
  for (let i = 0; i < GAPS; i++) last = await rx.waitFor(isPing, { from: last.index + 1 });
  const meanMs = Number(last.usec - first.usec) / 1000 / GAPS;
  assert.ok(
    meanMs >= PING_MS * 0.75 && meanMs < PING_MS * 1.75,
    `pings every ${meanMs.toFixed(1)} ms on average over ${GAPS} gaps, want ${PING_MS}`,
  );

  const blockMs = 3 * PING_MS;
  await command(`block ${blockMs}`);
  const blocking = await rx.waitFor((m) => m.fields.STATUS === 'blocking');
  const unblocked = await rx.waitFor((m) => m.fields.STATUS === 'unblocked', { from: blocking.index });
  // The child busy-waits blockMs between the two markers (Date.now() cannot go back), so three
  // pings were due in between; datagrams from one sender arrive in order.
  assert.equal(
    rx.messages.slice(blocking.index, unblocked.index).filter(isPing).length,
    0,
    'no WATCHDOG=1 while the event loop is blocked',
  );
  await rx.waitFor(isPing, { from: unblocked.index });

  // A failure: STATUS= on one line, ERRNO= only for a failed system call somewhere in the causes.
  await command('failed /nonexistent-seawall-notify-test');
  const failed = await rx.waitFor((m) => m.fields.STATUS?.startsWith('cannot read') === true);
  assert.equal(failed.text, 'STATUS=cannot read /nonexistent-seawall-notify-test\nERRNO=2');
  await command('failed-plain');
  const plain = await rx.waitFor((m) => m.fields.STATUS === 'no system call', { from: failed.index });
  assert.equal(plain.text, 'STATUS=no system call');

  await command('stop').catch(() => {});
  const stopping = await rx.waitFor((m) => m.fields.STOPPING === '1');
  assert.equal(stopping.text, 'STOPPING=1\nSTATUS=bye');
  const { code } = await within('the notify child to exit after stop', exitOf(child));
  assert.equal(code, 0);
});

test('a WatchdogSec= past what a timer can wait pings at most every 2^31−1 ms, never every millisecond', () => {
  const saved = { WATCHDOG_USEC: process.env.WATCHDOG_USEC, WATCHDOG_PID: process.env.WATCHDOG_PID };
  process.env.WATCHDOG_USEC = '5000000000000'; // ~58 days: half of it overflows a Node timer
  process.env.WATCHDOG_PID = String(process.pid);
  try {
    const enabled = { ...createNotifier({}), enabled: true };
    const watchdog = createWatchdog(enabled, process.env);
    assert.equal(watchdog.enabled, true);
    assert.equal(watchdog.pingIntervalMs, 2 ** 31 - 1);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('a STATUS= text is one assignment, and short enough that PID 1 keeps the notification', () => {
  // PID 1 splits on "\n" and "\r": either in a status forged another assignment.
  assert.equal(
    statusText('policy /x\rREADY=1\nMAINPID=1\u0000is invalid'),
    'policy /x READY=1 MAINPID=1 is invalid',
  );
  assert.equal(statusText('up'), 'up');
  // A start failure naming sixty mistakes: cut, at a character, with the journal named.
  const long = `cannot start: ${'rule “é” is invalid; '.repeat(300)}`;
  const cut = statusText(long);
  assert.ok(Buffer.byteLength(cut) <= STATUS_MAX_BYTES, `${Buffer.byteLength(cut)} bytes`);
  assert.ok(cut.endsWith('… (see the journal)'));
  assert.ok(long.startsWith(cut.slice(0, -' … (see the journal)'.length)), 'a prefix of the text');
  assert.ok(!cut.includes('\ufffd'));
  const emoji = statusText('🙂'.repeat(600));
  assert.ok(
    Buffer.byteLength(emoji) <= STATUS_MAX_BYTES && !/[\ud800-\udbff](?![\udc00-\udfff])/.test(emoji),
  );
});

/** `seawall simulate` against `seawall daemon`, both as the operator runs them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricSum, PATIENT_DEADLINE_MS, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { runCli as run } from './e2e/run-cli.js';

test('simulate --vms 8 --vcpus 4 --events 10000 exits 0 with every event answered', async (t) => {
  const d = await startDaemon();
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const r = await run([
    'simulate',
    '--socket',
    d.socket,
    '--vms',
    '8',
    '--vcpus',
    '4',
    '--events',
    '10000',
    '--deadline',
    `${PATIENT_DEADLINE_MS}ms`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.sent, 10_000);
  assert.equal(s.answered, 10_000);
  assert.equal(s.fallbacks, 0);
  assert.equal(s.verdicts.inject, 10_000);
  assert.ok(s.latencyUs.p50 > 0 && s.latencyUs.p99 >= s.latencyUs.p50);
  const text = await scrape(d.metricsUrl as string);
  assert.equal(metricSum(text, 'seawall_memory_errors_total'), 10_000);
  assert.equal(await d.stop(), 0);
});

test('simulate against no daemon fails with a clear message', async () => {
  const r = await run(['simulate', '--socket', '/nonexistent/plugin.sock', '--events', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot drive the daemon at \/nonexistent\/plugin.sock/);
});

test('simulate usage errors exit 2', async () => {
  assert.equal((await run(['simulate'])).code, 2);
  assert.equal((await run(['simulate', '--events', '1', '--mix', 'sea=x'])).code, 2);
});

/**
 * Issue 12, items 4 and 10: nothing another VM or the operator does stalls a VM's verdicts. While
 * one session floods 30,000 replays, while a 10 MB policy of 200,000 GPA ranges is reloaded, and
 * while `events --limit 10000` is read over the control socket, a well-behaved VM's verdict p99
 * stays within 50 ms of its own p99 just before, in the same run (docs/security.md says why). Two
 * racing reloads end with the policy the last reply names in force.
 *
 * The probe is a one-vCPU VM (fixtures.ts): each verdict's latency is timed from its exit. The
 * attackers are processes of their own, so that the test's process does nothing but probe, and
 * scripts/run-tests.mjs runs this file with no other test file beside it
 * (test/helpers/file-slots.ts): another file's daemons or guests would be charged to this daemon.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { after, before, type TestContext, test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { runTool } from '../daemon/e2e/run-cli.js';
import { CLI, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { nextEvent } from '../helpers/wait.js';
import { LatencyProbe, percentile, until, writePolicy } from './fixtures.js';

const P99_BOUND_MS = 50;
const FLOOD_MIN = 30_000;
/**
 * Replays per second: 20 times what stalled every other VM for seconds before replays were
 * de-duplicated off the verdict path (30,000 in a minute).
 */
const FLOOD_RATE = 10_000;
/** Probe verdicts measured during the flood: its p99 is then at most the 4th slowest. */
const FLOOD_SAMPLES = 400;
const FLOOD = new URL('./children/replay-flood.ts', import.meta.url).pathname;
let d: RunningDaemon;
let dir: string;
let policy: string;
let probe: LatencyProbe;

before(async () => {
  dir = mkdtempSync('/tmp/seawall-vpath-');
  policy = writePolicy(dir, 'small', ['rules: []', 'default:', '  action: { type: inject, abort: data }']);
  d = await startDaemon({ args: ['--policy', policy], metrics: false });
  probe = new LatencyProbe(d.socket);
  await probe.start();
});

after(async () => {
  await probe?.stop();
  await d?.kill();
  if (d) removeDir(d.dir);
  if (dir) removeDir(dir);
});

/**
 * The probe's p99 with no attack (over 300 verdicts, just before) and while `attack` runs. The
 * baseline is measured in the same run so that what a shared, loaded machine costs every process
 * is not charged to the daemon; the attack may add at most P99_BOUND_MS to it.
 */
async function p99During(
  t: TestContext,
  attack: () => Promise<void>,
): Promise<{ p99: number; n: number; bound: number }> {
  probe.latencies.length = 0;
  probe.fallbacks = 0;
  probe.record(true);
  await until(() => probe.latencies.length >= 300, 120_000, 'the baseline verdicts');
  const baseline = percentile(probe.latencies, 99);
  probe.latencies.length = 0;
  try {
    await attack();
  } finally {
    probe.record(false);
  }
  assert.equal(probe.fallbacks, 0, 'the probe VM never fell back');
  const p99 = percentile(probe.latencies, 99);
  t.diagnostic(
    `probe p99 ${baseline.toFixed(1)} ms before, ${p99.toFixed(1)} ms during (${probe.latencies.length} verdicts)`,
  );
  return { p99, n: probe.latencies.length, bound: baseline + P99_BOUND_MS };
}

test('a flood of 30,000 replays from one session: another VM keeps its p99', async (t) => {
  // The flooding VMM is a process of its own, as another VM's would be; it is connected before
  // the measurement starts. It sends at FLOOD_RATE, at least 30,000 replays, and on until the
  // probe has measured FLOOD_SAMPLES verdicts: a p99 over fewer would be close to a maximum, and
  // on a loaded machine the probe's round trips are slower.
  const flood = spawnOwned(
    process.execPath,
    ['--import', 'tsx', FLOOD, d.socket, String(FLOOD_MIN), String(FLOOD_RATE)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.after(() => killOwned(flood, 'the flooding VMM'));
  const lines = createInterface({ input: flood.stdout as Readable });
  await nextEvent<[string]>(lines, 'line', 'the flooding VMM to be welcomed', (l) => l === 'ready');
  let sent = 0;
  const { p99, n, bound } = await p99During(t, async () => {
    const done = nextEvent<[string]>(
      lines,
      'line',
      'the flood to be sent and recorded',
      (l) => l.startsWith('done '),
      { timeoutMs: 180_000 },
    );
    flood.stdin?.write('go\n');
    await until(
      () => probe.latencies.length >= FLOOD_SAMPLES,
      120_000,
      'the probe verdicts during the flood',
    );
    flood.stdin?.write('stop\n');
    const [line] = await done;
    sent = Number(line.slice('done '.length));
  });
  assert.ok(sent >= FLOOD_MIN, `the flood sent ${sent} replays`);
  assert.ok(
    p99 < bound,
    `probe p99 ${p99.toFixed(1)} ms during the flood of ${sent} replays (${n} verdicts), bound ${bound.toFixed(1)}`,
  );
  // Every replay is decided by now; a read waits at most 2 s for the writer thread to commit them
  // (docs/operations.md), so on a loaded machine the count may still be rising: wait for it.
  let replays = 0;
  await until(
    async () => {
      replays = (await controlRequest(d.controlSocket, 'status')).store?.replays ?? 0;
      return replays >= sent;
    },
    60_000,
    'every replay to be stored',
  );
  assert.equal(replays, sent, 'every replay recorded once');
});

test('events --limit 10000 over the control socket: another VM keeps its p99', async (t) => {
  // An operator's `seawall events --limit 10000 --json`, five times over, each a process of its
  // own writing to a file: receiving and printing the answers costs the probe's process nothing.
  const outputs = [0, 1, 2, 3, 4].map((i) => join(dir, `events-${i}.json`));
  const codes: (number | null)[] = [];
  const { p99, n, bound } = await p99During(t, async () => {
    for (const out of outputs) {
      const shell = `exec "$0" "$1" events --limit 10000 --json --control-socket "$2" > "$3"`;
      const r = await runTool('/bin/sh', ['-c', shell, process.execPath, CLI, d.controlSocket, out]);
      codes.push(r.code);
    }
  });
  assert.deepEqual(codes, [0, 0, 0, 0, 0], 'every read succeeded');
  for (const out of outputs) {
    assert.equal((JSON.parse(readFileSync(out, 'utf8')) as unknown[]).length, 10_000);
  }
  assert.ok(
    p99 < bound,
    `probe p99 ${p99.toFixed(1)} ms during large reads (${n} verdicts), bound ${bound.toFixed(1)}`,
  );
});

test('reloading a 10 MB policy of 200,000 GPA ranges: another VM keeps its p99', async (t) => {
  const lines = ['version: 1', 'name: big', 'rules:'];
  for (let r = 0; r < 4; r++) {
    lines.push(`  - name: r${r}`, '    match:', '      gpa:');
    for (let i = 0; i < 50_000; i++) {
      const base = BigInt(r * 50_000 + i + 1) << 24n;
      lines.push(`        - { from: 0x${base.toString(16)}, to: 0x${(base + 0xfffn).toString(16)} }`);
    }
    lines.push('    action: { type: kill, grace: 5s }');
  }
  lines.push('default:', '  action: { type: inject, abort: data }', '');
  const big = join(dir, 'big.yaml');
  writeFileSync(big, lines.join('\n'));
  writeFileSync(policy, lines.join('\n'));
  const { p99, n, bound } = await p99During(t, async () => {
    const r = await controlRequest(d.controlSocket, 'reload', {}, { timeoutMs: 600_000 });
    assert.equal(r.ok, true, r.issues.join('\n'));
  });
  assert.ok(
    p99 < bound,
    `probe p99 ${p99.toFixed(1)} ms during the reload (${n} verdicts), bound ${bound.toFixed(1)}`,
  );
});

test('two racing reloads: the policy in force is the one the last reply names', async () => {
  const none = ['rules: []', 'default:', '  action: { type: none }'];
  const inject = ['rules: []', 'default:', '  action: { type: inject, abort: data }'];
  writeFileSync(policy, `${['version: 1', 'name: first', ...none].join('\n')}\n`);
  const first = controlRequest(d.controlSocket, 'reload', {}, { timeoutMs: 120_000 });
  writeFileSync(policy, `${['version: 1', 'name: second', ...inject].join('\n')}\n`);
  const second = controlRequest(d.controlSocket, 'reload', {}, { timeoutMs: 120_000 });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.ok && b.ok, true);
  const status = await controlRequest(d.controlSocket, 'status');
  assert.equal(status.policy.version, b.version, 'the later reply names the policy in force');
});

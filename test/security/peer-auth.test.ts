/**
 * Issue 12, items 12 and 14: who may connect and what they may claim. With `vmIdOwners` binding
 * `tenant-a-` to one uid, another allowed uid is refused that prefix (REJECT UNAUTHORIZED) and may
 * still claim other ids. 200 connections from a uid that is not allowed are each refused, but they
 * log at most 10 lines (then one summary a minute), while the metric counts every one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WIRE_ERROR } from '../../protocol/index.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';

const HELLO_AS = new URL('./children/hello-as.mjs', import.meta.url).pathname;
const NOBODY = 65534;
const OTHER = 65533;
let d: RunningDaemon;
let dir: string;

before(async () => {
  if (process.getuid?.() !== 0) return;
  dir = mkdtempSync('/tmp/seawall-auth-');
  chmodSync(dir, 0o755);
  const config = join(dir, 'seawall.yaml');
  writeFileSync(
    config,
    [
      `allow: { uids: [0, ${NOBODY}], gids: [] }`,
      "socketMode: '0666'",
      'vmIdOwners:',
      '  - { prefix: "tenant-a-", uids: [4242] }',
      '',
    ].join('\n'),
  );
  d = await startDaemon({ dir, args: ['--config', config] });
});

after(async () => {
  await d?.kill();
  if (dir) removeDir(dir);
});

/** Says HELLO as `uid`, `count` times; resolves with the daemon's first answers (`welcome`, `reject 10`, …). */
function helloAs(uid: number, vmId: string, count = 1): Promise<string[]> {
  const p = spawn(process.execPath, [HELLO_AS, d.socket, vmId, String(count)], {
    uid,
    gid: uid,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout.on('data', (c) => {
    out += c;
  });
  const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    p.once('exit', () => {
      clearTimeout(timer);
      resolve(out.trim().split('\n'));
    }),
  );
}

test('a VM-id prefix bound to one uid is refused to another allowed uid', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a peer as another uid');
  assert.deepEqual(await helloAs(NOBODY, 'tenant-a-1'), [`reject ${WIRE_ERROR.UNAUTHORIZED}`]);
  assert.deepEqual(await helloAs(NOBODY, 'free-vm-1'), ['welcome']);
});

test('refused connections are all counted, and logged a few lines at most', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a peer as another uid');
  const before = d.output.filter((l) => l.includes('plugin connection refused')).length;
  const answers = await helloAs(OTHER, 'x', 200);
  assert.equal(answers.length, 200);
  assert.ok(
    answers.every((a) => a === `reject ${WIRE_ERROR.UNAUTHORIZED}`),
    answers.join(','),
  );
  const logged = d.output.filter((l) => l.includes('plugin connection refused')).length - before;
  assert.ok(logged <= 10, `${logged} lines for 200 refusals`);
  const text = await scrape(d.metricsUrl as string);
  assert.ok(metricSum(text, 'seawall_protocol_errors_total', (l) => l.includes('unauthorized')) >= 200);
});

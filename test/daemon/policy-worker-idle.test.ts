/**
 * The policy loader's worker (daemon/policy-worker.ts) is not kept between loads: once it has been
 * idle for its idle time it ends, and the next load starts another that loads as well.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PolicyWorker } from '../../daemon/policy-worker.js';
import { until, within } from '../helpers/wait.js';

test('the policy worker ends when idle; the next load starts another', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-policy-idle-'));
  const worker = new PolicyWorker(60_000, 50);
  t.after(() => {
    worker.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'p.yaml');
  writeFileSync(file, 'version: 1\nname: p\ndefault: { action: { type: inject, abort: data } }\n', {
    mode: 0o644,
  });
  const first = await within('a load', worker.load(file));
  assert.ok(first.ok, first.ok ? '' : first.issues.join('\n'));
  await until('the idle worker to end', () => !worker.running);
  const second = await within('a load on a new worker', worker.load(file));
  assert.ok(second.ok, second.ok ? '' : second.issues.join('\n'));
  assert.equal(worker.running, true, 'kept for its idle time after a load');
});

/**
 * Retention in the daemon as shipped: the compiled daemon starts its retention thread
 * (dist/bin/retention-thread.js) on the timer, the thread prunes the oldest events until the
 * data fits `retention.maxBytes`, and the newest events, every poisoned page and the daemon's
 * answers are untouched.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusResult } from '../../../control/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { simulate } from '../../../vmm/simulator.js';
import { removeDir, startDaemon } from '../../helpers/daemon.js';
import { until } from '../../helpers/wait.js';
import { cliJson } from './run-cli.js';

const MAX_BYTES = 262_144;

test('the retention thread prunes the oldest events until the store fits maxBytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-retention-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'seawall.yaml');
  writeFileSync(config, `retention:\n  maxBytes: ${MAX_BYTES}\n  intervalMs: 1000\n`);
  const d = await startDaemon({ args: ['--config', config], metrics: false });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const summary = await simulate({
    socket: d.socket,
    vms: 1,
    vcpus: 2,
    events: 2000,
    pages: 5,
    vmPrefix: 'ret',
  });
  assert.equal(summary.answered, 2000);
  const status = await until('retention to bring the store under its bound', async () => {
    const s = await cliJson<StatusResult>(d.controlSocket, ['status']);
    return s.store !== null && s.store.events < 2000 && s.store.bytes <= MAX_BYTES && s;
  });
  assert.ok(status.store && status.store.events > 0, 'the newest events are kept');
  assert.equal(status.store.health.healthy, true);
  // One session numbers its events 1 to 2,000: what is left must be the newest of them.
  const kept = (await cliJson<StoredEvent[]>(d.controlSocket, ['events', '--limit', '2000'])).map(
    (e) => e.seq,
  );
  assert.equal(kept.length, status.store.events);
  assert.equal(Math.max(...kept), 2000, 'the newest event is kept');
  assert.equal(Math.min(...kept), 2001 - kept.length, 'exactly the oldest were deleted');
  const pages = await cliJson<unknown[]>(d.controlSocket, ['poison', '--vm', 'ret-0']);
  assert.equal(pages.length, 5, 'poisoned pages are never pruned');
  assert.deepEqual(
    // Its error lines (daemon/store-reporting.ts), not any line that names a path with the word.
    d.output.filter((l) => /event store prune failed|retention failed/i.test(l)),
    [],
    'no retention error logged',
  );
});

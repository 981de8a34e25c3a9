/**
 * Issue 12, item 9: store faults are detected, reported and recovered. The state directory removed
 * at run time, and the disk full (a small tmpfs): `status` reports the store faulty, one log line
 * says so (not one per batch), and once the fault clears every event answered meanwhile is stored,
 * exactly once, and `status` reports it healthy again.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { StoreLock } from '../../store/index.js';
import { seaFrame } from '../../vmm/sample-events.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from './fixtures.js';

const daemons: RunningDaemon[] = [];
const mounts: string[] = [];
after(async () => {
  for (const d of daemons) await d.kill();
  for (const m of mounts) {
    try {
      execFileSync('umount', [m]);
    } catch {
      // not mounted
    }
  }
  for (const d of daemons) removeDir(d.dir);
});

const sea = (seq: number) => seaFrame(seq, { timeNs: BigInt(seq), gpa: BigInt(seq) << 12n });

async function answered(c: RawClient, from: number, to: number): Promise<void> {
  c.send(Buffer.concat(Array.from({ length: to - from + 1 }, (_, i) => sea(from + i))));
  await c.waitFor('verdict', (m) => m.seq === to);
}

async function health(d: RunningDaemon) {
  const s = await controlRequest(d.controlSocket, 'status');
  return s.store?.health;
}

async function storedSeqs(d: RunningDaemon, vm: string): Promise<number[]> {
  const rows = await controlRequest(d.controlSocket, 'events', { vm, limit: 10_000 });
  return rows.map((r) => r.seq).sort((a, b) => a - b);
}

test('the state directory removed at run time: faulty, then recovered with every answered event once', async () => {
  const d = await startDaemon({ metrics: false });
  daemons.push(d);
  const c = await RawClient.open(d.socket);
  await c.hello('rm-vm');
  await answered(c, 1, 50);
  // Moved away first, in one step, then deleted: removed in place, the daemon could make a file
  // in it (the next write-ahead file) between rm's last unlink and its rmdir, which then fails.
  const gone = `${d.stateDir}.removed`;
  renameSync(d.stateDir, gone);
  rmSync(gone, { recursive: true, force: true });
  await answered(c, 51, 150);
  // Until the daemon has seen the loss (its check runs once a second) status may still say healthy,
  // and a read in that window fails on the missing directory: not recovered yet, ask again.
  await until(
    async () => {
      try {
        return (await health(d))?.healthy === true && (await storedSeqs(d, 'rm-vm')).includes(150);
      } catch {
        return false;
      }
    },
    30_000,
    'recovery',
  );
  const seqs = await storedSeqs(d, 'rm-vm');
  const after = seqs.filter((s) => s > 50);
  assert.deepEqual(
    after,
    Array.from({ length: 100 }, (_, i) => 51 + i),
    'every event answered after the removal, once',
  );
  assert.equal(new Set(seqs).size, seqs.length, 'no event stored twice');
  const faultLines = d.output.filter((l) => l.includes('event store faulty'));
  assert.equal(faultLines.length, 1, 'one line for the fault');
  assert.equal(d.output.filter((l) => l.includes('event store recovered')).length, 1);
  // The store's lock went with the removed directory; the new one is held by this daemon again.
  assert.equal(readFileSync(join(d.stateDir, 'events.sqlite.lock'), 'utf8'), `${d.pid}\n`);
  assert.throws(() => StoreLock.take(join(d.stateDir, 'events.sqlite')), /in use by another seawall daemon/);
  c.destroy();
});

test('the disk full: faulty while it is, then every answered event stored once space returns', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount a small tmpfs');
  const dir = mkdtempSync('/tmp/seawall-full-');
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', state]);
  mounts.push(state);
  const d = await startDaemon({ metrics: false, dir, args: [] });
  daemons.push(d);
  assert.equal(d.stateDir, state);
  const c = await RawClient.open(d.socket);
  await c.hello('full-vm');
  await answered(c, 1, 20);
  // Fill the disk.
  const filler = join(state, 'filler');
  try {
    writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024));
  } catch {
    // ENOSPC: full, which is the point
  }
  await answered(c, 21, 400);
  await until(async () => (await health(d))?.healthy === false, 30_000, 'the fault to be reported');
  const linesWhileFull = d.output.length;
  await answered(c, 401, 600);
  rmSync(filler, { force: true });
  await until(async () => (await health(d))?.healthy === true, 30_000, 'recovery after space returns');
  const seqs = await storedSeqs(d, 'full-vm');
  assert.deepEqual(
    seqs,
    Array.from({ length: 600 }, (_, i) => i + 1),
    'every answered event, once',
  );
  // One line when the fault began, one at recovery, a few rate-limited failures: not one per batch.
  const storeLines = d.output.slice(linesWhileFull).filter((l) => /event store/.test(l));
  assert.ok(
    storeLines.length < 20,
    `${storeLines.length} store log lines while full:\n${storeLines.join('\n')}`,
  );
  c.destroy();
});

/**
 * One daemon per state directory. A second `seawall daemon` given the first one's state directory
 * (and sockets of its own, so that only the store can stop it) is refused with exit 1 naming the
 * first one's pid, before it opens the store: it would have inserted and truncated the first one's
 * write-ahead file, removed its segments and closed its live session rows. The first daemon goes
 * on, and every event it answered, before and after, is stored once. Under --no-store, where no
 * store lock stops it, a second daemon still starts, but without the migration memory: it neither
 * reads nor writes the first one's migrations.json; the first one's hold goes with its process.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VmView } from '../../../control/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { seaEvent } from '../../../vmm/sample-events.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { RawClient } from '../../helpers/raw-client.js';
import { until } from '../../helpers/wait.js';
import { cliJson, runCli } from './run-cli.js';

async function send(client: RawClient, from: number, to: number): Promise<void> {
  const now = Date.now();
  for (let seq = from; seq <= to; seq++)
    client.send(seaEvent(seq, { timeNs: BigInt(now + seq) * 1_000_000n, gpa: BigInt(seq) << 12n }));
  await client.waitFor('verdict', (v) => v.seq === to);
}

test('a second daemon on the same state directory is refused before it opens the store', async (t) => {
  let a: RunningDaemon | null = null;
  let alpha: RawClient | null = null;
  t.after(async () => {
    alpha?.destroy();
    await a?.kill();
    if (a) removeDir(a.dir);
  });
  a = await startDaemon({ metrics: false });
  alpha = await RawClient.open(a.socket);
  await alpha.hello('alpha');
  await send(alpha, 1, 20);

  const b = await runCli([
    'daemon',
    '--socket',
    join(a.dir, 'second.sock'),
    '--control-socket',
    join(a.dir, 'second-control.sock'),
    '--state-dir',
    a.stateDir,
    '--no-metrics',
    '--log',
    'stderr',
  ]);
  assert.equal(b.code, 1, `${b.stdout}${b.stderr}`);
  assert.match(`${b.stdout}${b.stderr}`, new RegExp(`in use by another seawall daemon \\(pid ${a.pid}\\)`));

  await send(alpha, 21, 40);
  const events = await cliJson<StoredEvent[]>(a.controlSocket, ['events', '--vm', 'alpha', '--limit', '100']);
  assert.deepEqual(
    events.map((e) => e.seq),
    Array.from({ length: 40 }, (_, i) => i + 1),
    'every answered event, once',
  );
  const vms = await cliJson<VmView[]>(a.controlSocket, ['vms']);
  assert.deepEqual(
    vms.map((v) => [v.vm, v.connected, v.events]),
    [['alpha', true, 40]],
  );
});

test('under --no-store a second daemon on the same state directory runs without migration memory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-nostore-'));
  const started: RunningDaemon[] = [];
  t.after(async () => {
    for (const d of started) await d.kill();
    for (const d of started) removeDir(d.dir);
    removeDir(dir);
  });
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'actions:\n  hooks:\n    orch: { type: http, url: "http://127.0.0.1:9/m" }\n', {
    mode: 0o600,
  });
  const stateDir = join(dir, 'state');
  const state = join(stateDir, 'migrations.json');
  const start = async () => {
    const d = await startDaemon({
      metrics: false,
      args: ['--no-store', '--config', config, '--state-dir', stateDir],
    });
    started.push(d);
    return d;
  };
  const a = await start();
  const b = await start();
  const warning = await until('the second daemon’s warning', () =>
    b.output.find((l) => l.includes('migration state:')),
  );
  assert.match(
    warning,
    new RegExp(`in use by another seawall daemon \\(pid ${a.pid}\\).*runs without migration memory`),
  );
  // The second wrote nothing, at its stop either; the first, holding it, writes at its stop.
  assert.equal(await b.stop(), 0, b.output.join('\n'));
  assert.equal(existsSync(state), false, 'the second daemon wrote migrations.json');
  assert.equal(await a.stop(), 0, a.output.join('\n'));
  assert.equal(readFileSync(state, 'utf8'), '{"version":1,"entries":[]}\n');
  // The first one gone, its hold is gone with it: the next daemon has the memory, and writes it.
  rmSync(state);
  const c = await start();
  assert.equal(await c.stop(), 0, c.output.join('\n'));
  assert.equal(existsSync(state), true, c.output.join('\n'));
});

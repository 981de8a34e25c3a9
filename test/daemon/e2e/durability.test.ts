/**
 * Crash durability of the event store. A fleet of plugin clients (driven here, so every outcome is
 * known) runs while the daemon is SIGKILLed at random moments, 24 times, and restarted each time on
 * the same state directory. A moment is chosen in the traffic, not in time: each boot is killed
 * once it has answered a random number of exits (seeded; the seed is printed), wherever it is in
 * the middle of the next ones — so a slow machine changes how long the test takes, not what it
 * tests. After every kill the file passes `PRAGMA integrity_check` on a
 * read-only connection and holds at least the rows it held before; at the end every event whose
 * verdict a client received from the daemon is in the store, decided once, and no row is repeated.
 *
 * Which key identifies an event across boots. Within a boot an event is (boot_id, session_id,
 * seq) (its row is inserted by the id given to it, once): session ids restart at 1 with every
 * daemon boot, and seq is the plugin's. The client
 * never learns the boot id, but it does not need to: a PluginClient's seq counter runs on across
 * reconnects (only a new client starts again at 1), and each client has its own VM id, so
 * (vm, seq) names one exit of one client across all boots. The same VM id may reconnect after a
 * kill without racing its old session: the old daemon is dead, and a new daemon's table of VM ids
 * held by live sessions (plugin-server.ts `#byVm`) starts empty.
 *
 * An exit may legitimately appear twice by (vm, seq): stored and decided by a daemon that died
 * before its verdict reached the client, then answered by fallback and reported again as a replay
 * (replay = 1) to the next boot. So per (vm, seq) there is at most one decided row and at most one
 * replay row; what may never happen is a decided row missing for a verdict the client applied.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { STORE_FILE } from '../../../store/index.js';
import { EventGenerator, parseMix } from '../../../vmm/event-mix.js';
import { PluginClient } from '../../../vmm/plugin-client.js';
import { DEFAULT_CAPS } from '../../../vmm/simulator.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { randomFor } from '../../helpers/seed.js';
import { nextEvent, within } from '../../helpers/wait.js';

const KILLS = 24;
const VMS = 4;
const VCPUS = 2;
/** Pause between one vCPU's exits: a steady fleet rather than a spinning one. */
const EXIT_GAP_MS = 4;
/** Each boot is killed once it has answered between these many exits. */
const ANSWERED_PER_BOOT = [10, 60] as const;

interface Outcome {
  source: 'daemon' | 'fallback';
  action: number;
}

interface Row {
  boot_id: string;
  session_id: number;
  seq: number;
  vm: string;
  replay: number;
  verdict_action: number | null;
}

function openReadOnly(path: string): Database.Database {
  return new Database(path, { readonly: true, fileMustExist: true });
}

/** integrity_check's single 'ok' row, and the row count, on a read-only connection. */
function checkFile(path: string): { integrity: string; rows: number } {
  const db = openReadOnly(path);
  try {
    const integrity = db.pragma('integrity_check', { simple: true }) as string;
    const rows = db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
    return { integrity, rows };
  } finally {
    db.close();
  }
}

test('kill -9 at random moments, 24 times: the store stays intact and holds every answered event once', async (t) => {
  const random = randomFor(t, 'kill moments');
  const answeredThisBoot = () =>
    ANSWERED_PER_BOOT[0] + Math.floor(random() * (ANSWERED_PER_BOOT[1] - ANSWERED_PER_BOOT[0] + 1));
  let d: RunningDaemon = await startDaemon({ metrics: false });
  const dir = d.dir;
  const file = join(d.stateDir, STORE_FILE);
  const clients: PluginClient[] = [];
  let stopping = false;
  let db: Database.Database | null = null;
  t.after(async () => {
    db?.close();
    stopping = true;
    await Promise.all(clients.map((c) => c.close()));
    await d.kill();
    removeDir(dir);
  });

  /** `${vm}/${seq}` → what the client applied. */
  const outcomes = new Map<string, Outcome>();
  const loops: Promise<void>[] = [];
  /** Emits 'answered' with the running count of exits the daemon answered. */
  const progress = new EventEmitter();
  let answeredSoFar = 0;
  const mix = parseMix('sea=80,nisv=10,mmio=5,sigbus=5');
  for (let vm = 0; vm < VMS; vm++) {
    const c = new PluginClient({
      socket: d.socket,
      vmId: `durable-${vm}`,
      vcpuCount: VCPUS,
      caps: DEFAULT_CAPS,
      deadlineMs: 2000,
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    await c.connect();
    clients.push(c);
    for (let vcpu = 0; vcpu < VCPUS; vcpu++) {
      const gen = new EventGenerator(mix, vm * 131 + vcpu);
      loops.push(
        (async () => {
          while (!stopping) {
            const out = await c.handleExit(gen.next(vcpu));
            outcomes.set(`${c.opts.vmId}/${out.verdict.seq}`, {
              source: out.source,
              action: out.verdict.action,
            });
            if (out.source === 'daemon') progress.emit('answered', ++answeredSoFar);
            // While the daemon is down the next exit would fall back at once: one fallback per
            // vCPU and outage is enough, and the volume to replay stays bounded however long a
            // restart takes on a loaded machine.
            else if (!c.connected) await once(c, 'ready');
            await delay(EXIT_GAP_MS);
          }
        })(),
      );
    }
  }

  const allConnected = () =>
    within(
      'every plugin to reconnect',
      Promise.all(clients.map((c) => (c.connected ? undefined : once(c, 'ready')))),
    );
  const allDisconnected = () =>
    within(
      'every plugin to notice the kill',
      Promise.all(clients.map((c) => (c.connected ? once(c, 'disconnected') : undefined))),
    );
  /** Resolves once the daemon has answered `n` more exits. */
  const answerMore = (n: number) => {
    const target = answeredSoFar + n;
    return nextEvent<[number]>(progress, 'answered', `${target} exits answered`, (k) => k >= target, {
      state: () => `${answeredSoFar} answered`,
    });
  };

  let rowsBefore = 0;
  for (let i = 0; i < KILLS; i++) {
    await allConnected();
    await answerMore(answeredThisBoot());
    const gone = allDisconnected();
    await d.kill();
    await gone;
    const { integrity, rows } = checkFile(file);
    assert.equal(integrity, 'ok', `integrity_check after kill ${i + 1}`);
    assert.ok(rows >= rowsBefore, `kill ${i + 1}: ${rows} rows, fewer than the ${rowsBefore} before it`);
    rowsBefore = rows;
    d = await startDaemon({ dir, metrics: false });
  }
  await allConnected();
  await answerMore(answeredThisBoot());
  stopping = true;
  await within('the vCPU loops to end', Promise.all(loops));
  await Promise.all(clients.map((c) => c.close()));
  assert.equal(await d.stop(), 0);

  db = openReadOnly(file);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  const rows = db
    .prepare('SELECT boot_id, session_id, seq, vm, replay, verdict_action FROM events')
    .all() as Row[];

  // An event within its boot, and (vm, session, seq) within each boot: never repeated.
  assert.deepEqual(
    db.prepare('SELECT boot_id, session_id, seq FROM events GROUP BY 1, 2, 3 HAVING COUNT(*) > 1').all(),
    [],
  );
  assert.deepEqual(
    db
      .prepare('SELECT boot_id, vm, session_id, seq FROM events GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1')
      .all(),
    [],
  );

  const decided = new Map<string, Row>();
  const replayed = new Set<string>();
  for (const r of rows) {
    const key = `${r.vm}/${r.seq}`;
    assert.ok(outcomes.has(key), `stored ${key} was never sent`);
    if (r.replay === 1) {
      assert.ok(!replayed.has(key), `${key} replayed twice`);
      assert.equal(outcomes.get(key)?.source, 'fallback', `${key} replayed, but the client had a verdict`);
      replayed.add(key);
    } else {
      assert.ok(!decided.has(key), `${key} decided twice (boots ${decided.get(key)?.boot_id}, ${r.boot_id})`);
      decided.set(key, r);
    }
  }

  let answered = 0;
  let fallbacks = 0;
  const missing: string[] = [];
  for (const [key, o] of outcomes) {
    if (o.source === 'fallback') {
      fallbacks++;
      continue;
    }
    answered++;
    const row = decided.get(key);
    if (!row) missing.push(key);
    else assert.equal(row.verdict_action, o.action, `${key}: stored verdict differs from the one applied`);
  }
  assert.deepEqual(missing, [], 'events answered by the daemon but not in the store');
  const boots = new Set(rows.map((r) => r.boot_id)).size;
  // Stored and decided, but the kill came before the verdict reached the client: the plugin falls
  // back and reports it again as a replay to the next boot, which must recognise it (same VM, seq
  // and plugin time) and store, count and rate-window it only once.
  const twice = [...replayed].filter((key) => decided.has(key)).length;
  t.diagnostic(
    `${outcomes.size} exits: ${answered} answered by the daemon, ${fallbacks} by fallback; ` +
      `${rows.length} rows (${replayed.size} replays, ${twice} exits both decided and replayed) ` +
      `from ${boots} boots`,
  );
  // The kills really interrupted traffic, and every boot answered (so stored) events before it.
  assert.ok(fallbacks > 0, 'some exits fell back while the daemon was down');
  assert.ok(answered >= (KILLS + 1) * ANSWERED_PER_BOOT[0], `only ${answered} exits were answered`);
  assert.equal(boots, KILLS + 1, 'every boot stored events');

  assert.equal(twice, 0, 'an exit decided before a kill and replayed after it is stored once');

  await t.test('sessions a killed daemon left open are closed at the next start', () => {
    const open = db?.prepare('SELECT COUNT(*) FROM sessions WHERE closed_ms IS NULL').pluck().get();
    assert.equal(open, 0, 'sessions rows with no closed_ms after a graceful stop');
  });
});

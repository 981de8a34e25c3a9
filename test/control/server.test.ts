/** The control socket over a real Unix socket: commands, bounds, permissions. */
import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { authorize, controlRequest, isControlError, type WhyResult } from '../../control/index.js';
import { MAX_REFUSING } from '../../control/server.js';
import { jsonText } from '../../store/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { record, session } from '../store/records.js';
import { startControl } from './fixture.js';

const T0 = 1_700_000_000_000;

/** A raw connection that reads answers line by line. */
function rawClient(
  path: string,
): Promise<{ sock: Socket; next: () => Promise<unknown>; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const lines: string[] = [];
    const waiters: ((l: string) => void)[] = [];
    createInterface({ input: sock }).on('line', (l) => {
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    });
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.once('error', reject);
    sock.once('connect', () =>
      resolve({
        sock,
        closed,
        next: () =>
          within(
            'an answer line from the control server',
            new Promise((r) => {
              const l = lines.shift();
              if (l !== undefined) r(JSON.parse(l));
              else waiters.push((x) => r(JSON.parse(x)));
            }),
          ),
      }),
    );
  });
}

test('the socket is created 0600 and removed at close', async () => {
  const f = await startControl();
  assert.equal(statSync(f.socket).mode & 0o777, 0o600);
  await f.close();
  assert.throws(() => statSync(f.socket));
});

test('status, events and poison answer from the store', async () => {
  const f = await startControl();
  const a = session('vm-a', 1n);
  f.sessions.push(a);
  f.store.append([
    record({ session: a, seq: 1, timeMs: T0, gpa: 0x9000n }),
    record({ session: session('vm-b', 2n), seq: 1, timeMs: T0 + 1, gpa: 0xa000n }),
  ]);
  const s = await controlRequest(f.socket, 'status');
  assert.equal(s.version, '0.0.0-test');
  assert.equal(s.uptimeMs, 60_000);
  assert.equal(s.policy.version, 'v1');
  assert.deepEqual(
    s.sessions.map((x) => [x.vm, x.id]),
    [['vm-a', '1']],
  );
  assert.equal(s.store?.events, 2);
  assert.equal(s.events.decided, 12);
  const ev = await controlRequest(f.socket, 'events', { vm: 'vm-b' });
  assert.deepEqual(
    ev.map((e) => [e.vm, e.gpa]),
    [['vm-b', '0x000000000000a000']],
  );
  const pages = await controlRequest(f.socket, 'poison', { vm: 'vm-a' });
  assert.deepEqual(
    pages.map((p) => [p.vm, p.gpa, p.count]),
    [['vm-a', '0x0000000000009000', 1]],
  );
  const vms = await controlRequest(f.socket, 'vms');
  assert.deepEqual(
    vms.map((v) => [v.vm, v.connected]),
    [
      ['vm-a', true],
      ['vm-b', false],
    ],
  );
  await f.close();
});

test('events, poison and vms read on the reader thread answer exactly what the store connection answers', async () => {
  const f = await startControl({}, true);
  const a = session('vm-a', 1n);
  const rows = [];
  for (let i = 0; i < 50; i++)
    rows.push(record({ session: a, seq: i + 1, timeMs: T0 + i, gpa: BigInt(i) << 12n }));
  rows.push(record({ session: session('vm-"\u001b', 2n), seq: 1, timeMs: T0 + 99, gpa: 0x9000n }));
  f.store.append(rows);
  const q = f.store.queries;
  try {
    for (const [cmd, args, direct] of [
      ['events', { limit: 40 }, q.events({ limit: 40 })],
      ['events', { vm: 'vm-"\u001b' }, q.events({ vm: 'vm-"\u001b' })],
      ['poison', { limit: 7 }, q.poisonedPages(undefined, 7)],
    ] as const) {
      const got = await controlRequest(f.socket, cmd, args);
      assert.ok(direct.length > 0, `${cmd} answers rows`);
      assert.deepEqual(got, JSON.parse(jsonText(direct)), `${cmd} ${JSON.stringify(args)}`);
    }
    // vms, made and encoded on the thread with the VMs connected now, known to the store or not.
    f.sessions.push(a, session('vm-live', 3n));
    const vms = await controlRequest(f.socket, 'vms');
    assert.deepEqual(vms, JSON.parse(jsonText(q.vms(['vm-a', 'vm-live']))));
    assert.deepEqual(
      vms.map((v) => [v.vm, v.connected, v.events]),
      [
        ['vm-"\u001b', false, 1],
        ['vm-a', true, 50],
        ['vm-live', true, 0],
      ],
    );
    const page = await controlRequest(f.socket, 'vms', { limit: 1, after: 'vm-"\u001b' });
    assert.deepEqual(page, JSON.parse(jsonText(q.vms(['vm-a', 'vm-live'], 1, 'vm-"\u001b'))));
    assert.deepEqual(
      page.map((v) => v.vm),
      ['vm-a'],
    );
    // The reader thread's answer keeps the request's id, as every answer does.
    const raw = await rawClient(f.socket);
    raw.sock.write('{"id":"q-7","cmd":"events","args":{"limit":1}}\n');
    const reply = (await raw.next()) as { id: unknown; ok: boolean; result: unknown[] };
    assert.deepEqual([reply.id, reply.ok, reply.result.length], ['q-7', true, 1]);
    raw.sock.destroy();
  } finally {
    await f.close();
  }
});

test('why is built on the reader thread, from the policy in force as text, never on the event loop', async () => {
  const f = await startControl({}, true);
  f.policy.currentText = {
    version: 'v1',
    source: `version: 1
name: rate-kill
rules:
  - name: kill-uc
    match: { kind: sea, rate: { threshold: "3 / 10m", scope: vm } }
    action: { type: kill, grace: 1s }
default:
  action: { type: inject, abort: data }
`,
  };
  const a = session('vm-a', 1n);
  f.store.append([1, 2, 3].map((seq) => record({ session: a, seq, timeMs: T0 + seq, action: 'kill' })));
  // Every read through the store's own connection (the event loop's) comes here first.
  f.store.beforeRead = () => {
    throw new Error("a read on the event loop's connection");
  };
  try {
    const why = (await controlRequest(f.socket, 'why', { vm: 'vm-a' })) as WhyResult;
    assert.equal(why.entries.length, 3);
    const last = why.entries.find((e) => e.event.seq === 3);
    const rate = last?.conditions?.find((c) => c.matcher === 'rate');
    assert.ok(rate, `the rule's conditions, compiled from the text: ${JSON.stringify(last?.conditions)}`);
    assert.equal(rate.evidence?.count, 3, 'the rate window holds the three events');
  } finally {
    await f.close();
  }
});

test('bad requests get typed errors and the connection stays usable', async () => {
  const f = await startControl();
  const c = await rawClient(f.socket);
  c.sock.write('not json\n{"id":2,"cmd":"launch"}\n{"id":3,"cmd":"events","args":{"limit":-1}}\n');
  // A poison cursor whose GPA is no hex text: refused, not compared as text with the stored GPAs.
  c.sock.write('{"id":5,"cmd":"poison","args":{"after":{"vm":"a","gpa":"zz"}}}\n');
  c.sock.write('{"id":4,"cmd":"status"}\n');
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push(await c.next());
  assert.deepEqual(
    codes.map((r) => {
      const x = r as { id: unknown; ok: boolean; error?: { code: string } };
      return [x.id, x.ok, x.error?.code];
    }),
    [
      [null, false, 'SEAWALL_CONTROL_BAD_REQUEST'],
      [2, false, 'SEAWALL_CONTROL_UNKNOWN_COMMAND'],
      [3, false, 'SEAWALL_CONTROL_BAD_REQUEST'],
      [5, false, 'SEAWALL_CONTROL_BAD_REQUEST'],
      [4, true, undefined],
    ],
  );
  c.sock.destroy();
  await f.close();
});

test('a request over the size bound is refused and the connection closed', async () => {
  const f = await startControl({ maxRequestBytes: 1024 });
  const c = await rawClient(f.socket);
  c.sock.write(`{"id":1,"cmd":"status","args":{"pad":"${'x'.repeat(4096)}`);
  const r = (await c.next()) as { ok: boolean; error: { code: string } };
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 'SEAWALL_CONTROL_TOO_LARGE');
  await c.closed;
  // The server itself is fine.
  assert.equal((await controlRequest(f.socket, 'status')).version, '0.0.0-test');
  await f.close();
});

test('connections beyond the bound are answered BUSY', async () => {
  const f = await startControl({ maxConnections: 1 });
  const first = await rawClient(f.socket);
  await assert.rejects(controlRequest(f.socket, 'status'), (err) =>
    isControlError(err, 'SEAWALL_CONTROL_BUSY'),
  );
  first.sock.destroy();
  await within('the first connection to close', first.closed);
  // Admission is decided at accept: wait until the server saw the close.
  await until('the server to see the close', () => f.server.connectionCount === 0);
  assert.equal((await controlRequest(f.socket, 'status')).version, '0.0.0-test');
  await f.close();
});

test('connections answered BUSY and still closing are bounded: past them a newcomer is closed at once', async (t) => {
  // A grace far past the test: only the bound closes any of them before the test ends.
  const f = await startControl({ maxConnections: 1, refuseGraceMs: 600_000 });
  t.after(() => f.close());
  const first = await rawClient(f.socket);
  t.after(() => first.sock.destroy());
  const extra = 20;
  let closed = 0;
  const socks: Socket[] = [];
  t.after(() => {
    for (const s of socks) s.destroy();
  });
  for (let i = 0; i < MAX_REFUSING + extra; i++) {
    const s = connect(f.socket);
    s.on('error', () => {});
    s.once('close', () => closed++);
    socks.push(s);
  }
  // Every one is either held answered BUSY, or was closed.
  await until('every connection to be refused', () => f.server.refusingCount + closed === socks.length, {
    state: () => `refusing ${f.server.refusingCount}, closed ${closed}`,
  });
  assert.equal(f.server.refusingCount, MAX_REFUSING);
  assert.equal(closed, extra);
  // Root's way in is as before once a slot is free.
  first.sock.destroy();
  await until('the server to see the close', () => f.server.connectionCount === 0);
  assert.equal((await controlRequest(f.socket, 'status')).version, '0.0.0-test');
});

test('reload from root runs; from another uid it is refused while reading is allowed', async () => {
  const f = await startControl({ daemonUid: 0 });
  assert.deepEqual(await controlRequest(f.socket, 'reload'), { ok: true, version: 'v2', issues: [] });
  assert.equal(f.reloads, 1);
  if (process.getuid?.() !== 0) {
    // Without root this test cannot switch uid; the policy itself is covered below.
    await f.close();
    return;
  }
  // Open the socket to everyone so the second gate, SO_PEERCRED, is what decides.
  chmodSync(dirname(f.socket), 0o755);
  chmodSync(f.dir, 0o755);
  chmodSync(f.socket, 0o666);
  const script = `
    const net = require('node:net');
    const s = net.connect(process.argv[1]);
    let buf = '';
    s.on('data', (d) => { buf += d; if (buf.split('\\n').length > 2) { process.stdout.write(buf); s.destroy(); } });
    s.write('{"id":1,"cmd":"reload"}\\n{"id":2,"cmd":"status"}\\n');`;
  const child = spawnOwned(process.execPath, ['-e', script, f.socket], { uid: 65534, gid: 65534 });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  try {
    await within('the unprivileged client to finish', exitOf(child));
  } finally {
    await killOwned(child, 'the unprivileged client');
  }
  const [reload, status] = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(reload.ok, false);
  assert.equal(reload.error.code, 'SEAWALL_CONTROL_FORBIDDEN');
  assert.match(reload.error.message, /peer uid 65534/);
  assert.equal(status.ok, true);
  assert.equal(f.reloads, 1, 'the refused reload did not run');
  await f.close();
});

test('authorize: read-only for anyone, mutating for root and the daemon uid only', () => {
  const peer = (uid: number) => ({ pid: 1, uid, gid: uid });
  assert.equal(authorize('status', peer(1234), 999).ok, true);
  assert.equal(authorize('events', null, 999).ok, true);
  assert.equal(authorize('reload', peer(0), 999).ok, true);
  assert.equal(authorize('reload', peer(999), 999).ok, true);
  assert.equal(authorize('reload', peer(1234), 999).ok, false);
  assert.equal(authorize('reload', null, 999).ok, false);
});

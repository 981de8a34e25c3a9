/**
 * The /metrics endpoint's connection bound against peers that hold connections, silent or
 * re-asking: any local user can open them on a loopback port. Past the bound connections are shared
 * by owner (the peer's uid, else its address): a newcomer of an owner holding fewer than another
 * closes one of that owner's, so Prometheus gets its scrape; a newcomer of the owner holding most
 * closes that owner's oldest idle one, or is closed when all of them have a request in progress.
 * Real TCP connections, a real server; the uids are real ones where the test can switch to one.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { tcpPeerUid } from '../../kvm/index.js';
import { type MetricsRendering, MetricsServer, type PeerEndpoint } from '../../metrics/index.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { rendered } from './exposition.js';

/** A source whose renderings the test can hold open: `release` lets every one waiting finish. */
function heldSource() {
  const held: Array<() => void> = [];
  let hold = false;
  return {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    render: () =>
      hold
        ? new Promise<MetricsRendering>((resolve) => held.push(() => resolve(rendered('up 1\n'))))
        : Promise.resolve(rendered('up 1\n')),
    holdRenderings(on: boolean) {
      hold = on;
      if (!on) for (const r of held.splice(0)) r();
    },
    get waiting() {
      return held.length;
    },
  };
}

async function serve(t: TestContext, maxConnections: number) {
  const source = heldSource();
  // Every rendering may start at once: pacing is not what is tested here.
  const server = new MetricsServer(source, { port: 0, maxConnections, maxRenderShare: 1 });
  const { port } = await server.listen();
  t.after(() => server.close());
  return { server, port, source };
}

/** A TCP connection that sends nothing; resolves once connected. */
function silent(t: TestContext, port: number, from = '127.0.0.1'): Promise<Socket> {
  return within(
    'a silent connection',
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(s));
      s.once('error', reject);
      t.after(() => s.destroy());
    }),
  );
}

const closed = (s: Socket) => s.destroyed || new Promise<void>((r) => s.once('close', () => r()));

/**
 * GET /metrics on a fresh connection: the status, or the error that ended it. `from` is the local
 * address to connect from: without a peerUid the server tells owners apart by address alone.
 */
function scrape(port: number, from = '127.0.0.1'): Promise<number | string> {
  return within(
    'a scrape',
    new Promise((resolve) => {
      const options = { host: '127.0.0.1', port, path: '/metrics', agent: false, localAddress: from };
      const req = request(options, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    }),
  );
}

test('connections that send nothing cannot keep a scrape out: the oldest idle one is closed for it', async (t) => {
  const { server, port } = await serve(t, 4);
  const held: Socket[] = [];
  for (let i = 0; i < 4; i++) held.push(await silent(t, port));
  await until('the server to hold all four', () => server.connectionCount === 4);
  assert.equal(await scrape(port), 200);
  await within('the oldest silent connection to be closed', Promise.resolve(closed(held[0] as Socket)));
  assert.deepEqual(
    held.slice(1).map((s) => s.destroyed),
    [false, false, false],
    'only the oldest went',
  );
  // A holder that reconnects at once takes a slot from another of its own, never a scrape's answer.
  for (let round = 0; round < 3; round++) {
    held.push(await silent(t, port));
    assert.equal(await scrape(port), 200);
  }
  assert.ok(server.connectionCount <= 4);
});

test('when every connection has a request in progress, the newcomer is the one closed', async (t) => {
  const { server, port, source } = await serve(t, 2);
  source.holdRenderings(true);
  const first = scrape(port);
  const second = scrape(port);
  // One rendering is shared by both: they wait for it together.
  await until(
    'both requests to be in progress',
    () => source.waiting === 1 && server.requestsInProgress === 2,
  );
  const third = await scrape(port);
  assert.ok(typeof third === 'string', `the newcomer was closed unanswered: ${third}`);
  source.holdRenderings(false);
  assert.deepEqual(await Promise.all([first, second]), [200, 200]);
});

test('a scraper that never reads its answer is closed once the answer makes no progress', async (t) => {
  // 32 MB: more than the socket buffers take, so the server's write stalls with the peer.
  const big = `# ${'x'.repeat(32 * 1024 * 1024)}\n`;
  const server = new MetricsServer(
    { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => rendered(big) },
    { port: 0, maxConnections: 2, maxRenderShare: 1, stallTimeoutMs: 300 },
  );
  const { port } = await server.listen();
  t.after(() => server.close());
  const s = await silent(t, port);
  s.pause(); // never read
  s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  await until('the request to be in progress', () => server.requestsInProgress === 1);
  // The server's side goes (the paused peer would only see it by reading).
  await until('the stalled connection to be closed, its slot free', () => server.connectionCount === 0);
  assert.equal(await scrape(port), 200);
});

/**
 * A server whose owners are given by the peer's address (uid 1000 + its last octet), recording each
 * address it asked about: the sharing rule without switching uids. `unknown` makes every lookup fail.
 */
async function serveOwned(t: TestContext, maxConnections: number, unknown = false) {
  const source = heldSource();
  const asked: string[] = [];
  const peerUid = (_local: PeerEndpoint, remote: PeerEndpoint) => {
    asked.push(remote.address);
    if (unknown) throw new Error('no sock_diag');
    return 1000 + Number(remote.address.split('.').at(-1));
  };
  const failures: string[] = [];
  const onPeerUidFailed = (err: Error) => failures.push(err.message);
  const options = { port: 0, maxConnections, maxRenderShare: 1, peerUid, onPeerUidFailed };
  const server = new MetricsServer(source, options);
  const { port } = await server.listen();
  t.after(() => server.close());
  source.holdRenderings(true);
  return { server, port, source, asked, failures };
}

test('an owner holding two more than the newcomer’s gives up a connection, even mid-request', async (t) => {
  const { server, port, source, asked } = await serveOwned(t, 2);
  // One owner (127.0.0.1) holds both slots, each with a request in progress.
  const first = scrape(port);
  const second = scrape(port);
  await until('both requests to be in progress', () => server.requestsInProgress === 2);
  // Another owner still gets in: the first owner's oldest goes for it.
  const other = scrape(port, '127.0.0.2');
  await until('the other owner’s request to be in progress', () =>
    server.connectionStates.some((c) => c.owner === 'uid 1002' && c.requests === 1),
  );
  assert.ok(asked.includes('127.0.0.2'));
  // Now each holds one, all in progress: a newcomer of either is refused.
  assert.ok(typeof (await scrape(port)) === 'string', 'the first owner, holding as many, is refused');
  source.holdRenderings(false);
  const [a, b, c] = await Promise.all([first, second, other]);
  assert.ok(typeof a === 'string', `the first owner's oldest was closed: ${a}`);
  assert.deepEqual([b, c], [200, 200]);
});

test('owners holding one each keep their requests: a third owner is let in only for an idle one', async (t) => {
  const { server, port, source, asked } = await serveOwned(t, 2);
  const a = scrape(port, '127.0.0.1');
  const b = scrape(port, '127.0.0.2');
  await until('both requests to be in progress', () => server.requestsInProgress === 2);
  const c = await scrape(port, '127.0.0.3');
  assert.ok(typeof c === 'string', `the third owner was refused: ${c}`);
  assert.ok(asked.includes('127.0.0.3'));
  source.holdRenderings(false);
  assert.deepEqual(await Promise.all([a, b]), [200, 200], 'no scrape in progress was closed');
  await until('both answered connections to close', () => server.connectionCount === 0);
  // One owner's request in progress, another's connection idle: the third owner gets in for the idle one.
  source.holdRenderings(true);
  const inProgress = scrape(port, '127.0.0.1');
  const idle = await silent(t, port, '127.0.0.4');
  await until(
    'one request in progress, one idle',
    () => server.connectionCount === 2 && server.requestsInProgress === 1,
  );
  const third = scrape(port, '127.0.0.3');
  await within('the idle connection to be closed for it', Promise.resolve(closed(idle)));
  source.holdRenderings(false);
  assert.deepEqual(await Promise.all([inProgress, third]), [200, 200]);
});

test('local peers the kernel cannot name are one owner, whatever 127.x address they pick', async (t) => {
  const { server, port, source, asked, failures } = await serveOwned(t, 2, true);
  const a = scrape(port, '127.0.0.1');
  const b = scrape(port, '127.0.0.1');
  await until('both requests to be in progress', () => server.requestsInProgress === 2);
  // Another loopback address is not another owner: nothing idle, so it is refused.
  const c = await scrape(port, '127.0.0.9');
  assert.ok(typeof c === 'string', `the newcomer from 127.0.0.9 was refused: ${c}`);
  assert.ok(asked.includes('127.0.0.9'));
  assert.ok(asked.length >= 3, `every owner asked: ${asked}`);
  assert.deepEqual(failures, ['no sock_diag'], 'the failure is told once');
  source.holdRenderings(false);
  assert.deepEqual(await Promise.all([a, b]), [200, 200]);
});

test('a user holding every slot with requests in progress cannot keep another user’s scrape out', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('switching to uid 65534 needs root');
    return;
  }
  const source = heldSource();
  // The owners the server asked for, in order: the scrape's is asked when it connects past the bound.
  const asked: Array<number | null> = [];
  const peerUid = (local: PeerEndpoint, remote: PeerEndpoint) => {
    const uid = tcpPeerUid(local, remote);
    asked.push(uid);
    return uid;
  };
  const server = new MetricsServer(source, { port: 0, maxConnections: 4, maxRenderShare: 1, peerUid });
  const { port } = await server.listen();
  t.after(() => server.close());
  source.holdRenderings(true);
  // As uid 65534, from the same address as the scrape: four connections, each asking and asking
  // again as soon as it is answered or closed, so every slot always has a request in progress.
  const script = `
    const http = require('node:http');
    let started = 0;
    const ask = () => {
      const req = http.request({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/metrics', agent: false }, (res) => {
        res.resume();
        res.on('end', ask);
      });
      req.on('error', () => setImmediate(ask));
      req.on('socket', (s) => s.once('connect', () => { if (++started === 4) process.stdout.write('asking\\n'); }));
      req.end();
    };
    for (let i = 0; i < 4; i++) ask();`;
  const child = spawnOwned(process.execPath, ['-e', script, String(port)], { uid: 65534, gid: 65534 });
  t.after(() => killOwned(child, 'the re-asking user'));
  await within(
    'the re-asking user to connect',
    new Promise<string>((r) => createInterface({ input: child.stdout as Readable }).once('line', r)),
  );
  await until('its four requests to be in progress', () => server.requestsInProgress === 4);
  // Root's scrape is admitted (one of the other user's goes) and answered. Its admission is decided
  // when its owner is asked, before any rendering is let go.
  const answer = scrape(port);
  await until('the scrape’s owner to be asked', () => asked.includes(0), { state: () => `asked ${asked}` });
  assert.ok(!asked.includes(null), 'every owner was found by the kernel');
  source.holdRenderings(false);
  assert.equal(await answer, 200);
});

test('requests sent back to back without reading the answers: the connection is closed, not held', async (t) => {
  const source = heldSource();
  // Nothing else closes it within the test: a stall timeout far past its deadline.
  const server = new MetricsServer(source, { port: 0, maxRenderShare: 1, stallTimeoutMs: 600_000 });
  const { port } = await server.listen();
  t.after(() => server.close());
  source.holdRenderings(true);
  t.after(() => source.holdRenderings(false));
  const s = await silent(t, port);
  s.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(1000));
  await within('the pipelining connection to be closed', Promise.resolve(closed(s)), {
    state: () => `requests in progress: ${server.requestsInProgress}`,
  });
  // One request at a time, as Prometheus asks, is answered as ever.
  source.holdRenderings(false);
  assert.equal(await scrape(port), 200);
});

/**
 * The /metrics endpoint's connection bound against peers that hold connections and send nothing:
 * any local user can open them on a loopback port. A newcomer past the bound closes the oldest
 * connection with no request in progress, so Prometheus gets its scrape; only when every connection
 * has a request in progress is the newcomer the one closed. Real TCP connections, a real server.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type MetricsRendering, MetricsServer } from '../../metrics/index.js';
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
function silent(t: TestContext, port: number): Promise<Socket> {
  return within(
    'a silent connection',
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
      t.after(() => s.destroy());
    }),
  );
}

const closed = (s: Socket) => s.destroyed || new Promise<void>((r) => s.once('close', () => r()));

/** GET /metrics on a fresh connection: the status, or the error that ended it. */
function scrape(port: number): Promise<number | string> {
  return within(
    'a scrape',
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
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

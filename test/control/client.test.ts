/**
 * The control client's deadlines: `reload` waits as long as the daemon may spend loading a policy,
 * and a reload that got no answer is reported as of unknown outcome, never as refused. The daemon
 * is a fake server here, so that the test decides when (and whether) it answers; time is mocked
 * for the client's deadline, never slept through.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { main } from '../../cli/cli.js';
import {
  CONTROL_TIMEOUT_MS,
  controlRequest,
  controlTimeoutMs,
  isControlError,
  RELOAD_TIMEOUT_MS,
} from '../../control/index.js';
import { POLICY_LOAD_TIMEOUT_MS } from '../../daemon/policy-worker.js';
import { WAIT_MS, WaitTimeout } from '../helpers/wait.js';

/** Taken before any test mocks the timers: the deadlines of this file's own waits stay real. */
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

function withinReal<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new WaitTimeout(what, WAIT_MS)), WAIT_MS);
  });
  return Promise.race([p, deadline]).finally(() => realClearTimeout(timer));
}

/** A control server that hands each request line to the test and answers only when told. */
async function fakeDaemon(): Promise<{
  path: string;
  request: () => Promise<{ line: string; sock: Socket }>;
  close: () => Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-client-'));
  const path = join(dir, 'control.sock');
  const waiting: ((r: { line: string; sock: Socket }) => void)[] = [];
  const arrived: { line: string; sock: Socket }[] = [];
  const socks = new Set<Socket>();
  const server: Server = createServer((sock) => {
    socks.add(sock);
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const req = { line: buf.slice(0, nl), sock };
      const w = waiting.shift();
      if (w) w(req);
      else arrived.push(req);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    request: () =>
      withinReal(
        'a request at the fake daemon',
        new Promise((r) => {
          const req = arrived.shift();
          if (req) r(req);
          else waiting.push(r);
        }),
      ),
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function cli(argv: string[]) {
  let out = '';
  let err = '';
  const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
  const status = await main(argv, io, { env: {} });
  return { status, out, err };
}

test('reload waits at least as long as the daemon may take to load a policy; reads keep 10 s', () => {
  assert.ok(
    RELOAD_TIMEOUT_MS > POLICY_LOAD_TIMEOUT_MS,
    `reload timeout ${RELOAD_TIMEOUT_MS} ms must exceed the daemon's load timeout ${POLICY_LOAD_TIMEOUT_MS} ms`,
  );
  assert.equal(controlTimeoutMs('reload'), RELOAD_TIMEOUT_MS);
  for (const cmd of ['status', 'vms', 'events', 'poison', 'why'] as const) {
    assert.equal(controlTimeoutMs(cmd), CONTROL_TIMEOUT_MS);
  }
});

test('seawall reload answered after the daemon’s full load time reports the new policy live', async (t) => {
  const d = await fakeDaemon();
  t.after(() => d.close());
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const run = cli(['reload', '--control-socket', d.path]);
  const { line, sock } = await d.request();
  assert.equal(JSON.parse(line).cmd, 'reload');
  // The daemon compiles for as long as it may (a 10 MB policy takes seconds, a pathological one
  // up to the load timeout), then answers.
  mock.timers.tick(POLICY_LOAD_TIMEOUT_MS);
  sock.write(`${JSON.stringify({ id: 1, ok: true, result: { ok: true, version: 'v9', issues: [] } })}\n`);
  const r = await withinReal('seawall reload to finish', run);
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /policy v9 is live/);
});

test('seawall reload without an answer says the outcome is unknown and to check status, not refused', async (t) => {
  const d = await fakeDaemon();
  t.after(() => d.close());
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const run = cli(['reload', '--control-socket', d.path]);
  await d.request();
  mock.timers.tick(RELOAD_TIMEOUT_MS);
  const r = await withinReal('seawall reload to give up', run);
  assert.equal(r.status, 1);
  assert.match(r.err, new RegExp(`no answer from ${d.path} within ${RELOAD_TIMEOUT_MS} ms`));
  assert.match(r.err, /whether the reload took effect is unknown/);
  assert.match(r.err, /check `seawall status`/);
  assert.doesNotMatch(r.err, /refused/);
});

test('a read without an answer times out at the injected deadline, with no word of an unknown outcome', async (t) => {
  const d = await fakeDaemon();
  t.after(() => d.close());
  const pending = controlRequest(d.path, 'status', {}, { timeoutMs: 50 });
  await d.request();
  await withinReal(
    'the status request to time out',
    assert.rejects(pending, (err) => {
      assert.ok(isControlError(err, 'SEAWALL_CONTROL_TIMEOUT'));
      assert.match(err.message, /within 50 ms$/);
      return true;
    }),
  );
  const reload = controlRequest(d.path, 'reload', {}, { timeoutMs: 50 });
  await d.request();
  await withinReal(
    'the reload request to time out',
    assert.rejects(reload, (err) => isControlError(err) && /took effect is unknown/.test(err.message)),
  );
});

test('a connection closed before any answer reads as a daemon away; closed partway, as a broken answer', async (t) => {
  const d = await fakeDaemon();
  t.after(() => d.close());
  // The daemon stopping with the request in hand: `seawall events --follow` asks again.
  const away = controlRequest(d.path, 'follow', {});
  (await d.request()).sock.end();
  await withinReal(
    'the request closed unanswered to fail',
    assert.rejects(away, (err) => {
      assert.ok(isControlError(err, 'SEAWALL_CONTROL_UNAVAILABLE'), String(err));
      assert.match(err.message, /closed without answering$/);
      return true;
    }),
  );
  const reload = controlRequest(d.path, 'reload', {});
  (await d.request()).sock.end();
  await withinReal(
    'the reload closed unanswered to fail',
    assert.rejects(reload, (err) => isControlError(err) && /took effect is unknown/.test(err.message)),
  );
  const broken = controlRequest(d.path, 'status', {});
  (await d.request()).sock.end('{"id":1,"ok":tr');
  await withinReal(
    'the request closed partway to fail',
    assert.rejects(broken, (err) => isControlError(err, 'SEAWALL_CONTROL_BAD_RESPONSE')),
  );
});

/**
 * The control server against peers that break the protocol's manners on purpose or by habit: an id
 * built to overflow the stack, a client that ends its side after its request (`printf … | socat`,
 * as docs/operations.md shows), and a peer that closes each connection right after its request to
 * have more requests run than it may hold connections. The server runs on a real socket with a
 * context whose commands the test holds open, so that what runs at once can be counted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  type ControlContext,
  ControlServer,
  type ControlServerOptions,
  controlRequest,
} from '../../control/index.js';
import { until, within } from '../helpers/wait.js';

async function serve(t: TestContext, ctx: Partial<ControlContext>, opts: ControlServerOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-ctl-peers-'));
  const path = join(dir, 'control.sock');
  const errors: string[] = [];
  const server = new ControlServer(
    {
      status: async () => ({ version: 'test' }) as never,
      vms: async () => [],
      events: async () => [],
      follow: async () => ({}) as never,
      poison: async () => [],
      why: async () => ({}) as never,
      reload: async () => ({ ok: true, version: 'v', issues: [] }),
      ...ctx,
    },
    { ...opts, onError: (cmd, err) => errors.push(`${cmd}: ${(err as Error).message}`) },
  );
  await server.listen({ path });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, server, errors };
}

/** Sends `bytes`, ending its side after them when `halfClose`; resolves with all it got once closed. */
function exchange(path: string, bytes: string, halfClose: boolean): Promise<string> {
  return within(
    'the exchange to end',
    new Promise((resolve) => {
      const s = connect({ path, allowHalfOpen: true }, () => (halfClose ? s.end(bytes) : s.write(bytes)));
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        out += d;
        if (!halfClose && out.includes('\n')) s.destroy();
      });
      s.on('error', () => {});
      s.on('close', () => resolve(out));
    }),
  );
}

test('an id nested 20,000 deep is answered BAD_REQUEST with no id, and the server goes on', async (t) => {
  const { path, errors } = await serve(t, {});
  const depth = 20_000; // ~40 KB: inside the 64 KiB line bound
  const reply = JSON.parse(
    await exchange(path, `{"id":${'['.repeat(depth)}${']'.repeat(depth)},"cmd":"status"}\n`, false),
  );
  assert.equal(reply.ok, false);
  assert.equal(reply.id, null);
  assert.equal(reply.error.code, 'SEAWALL_CONTROL_BAD_REQUEST');
  // An id the schema allows is still echoed, even with a request that fails.
  const named = JSON.parse(await exchange(path, '{"id":"x-1","cmd":"nope"}\n', false));
  assert.deepEqual([named.id, named.error.code], ['x-1', 'SEAWALL_CONTROL_UNKNOWN_COMMAND']);
  assert.equal((await controlRequest(path, 'status')).version, 'test');
  assert.deepEqual(errors, []);
});

test('a client that ends its side after its request gets the answer, then the connection ends', async (t) => {
  // As the daemon's status does: its store figures come from the reader thread, a moment later.
  let answer!: () => void;
  const status = () =>
    new Promise<never>((resolve) => (answer = () => resolve({ version: 'late' } as never)));
  const { path } = await serve(t, { status });
  const out = exchange(path, '{"id":1,"cmd":"status"}\n{"id":2,"cmd":"nope"}\n', true);
  await until('the status request to run', () => answer !== undefined);
  answer();
  const replies = (await out)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    replies.map((r) => [r.id, r.ok]),
    [
      [1, true],
      [2, false],
    ],
  );
  assert.equal(replies[0].result.version, 'late');
  // A last line without its newline is not a request: nothing is answered, and the connection ends.
  assert.equal(await exchange(path, '{"id":3,"cmd":"status"}', true), '');
});

test('a connection closed while its request runs keeps its slot until the request ends', async (t) => {
  const maxConnections = 4;
  const held: Array<() => void> = [];
  let running = 0;
  let most = 0;
  /** Told when a request starts running. */
  let started = () => {};
  let hold = true;
  const events = () =>
    new Promise<never[]>((resolve) => {
      if (!hold) return resolve([]);
      running++;
      most = Math.max(most, running);
      started();
      held.push(() => {
        running--;
        resolve([]);
      });
    });
  const { path, server } = await serve(t, { events }, { maxConnections, reservedConnections: 0 });
  t.after(() => {
    for (const release of held.splice(0)) release();
  });
  let busy = 0;
  for (let i = 0; i < 3 * maxConnections; i++) {
    // Each peer closes as soon as its request runs, or as soon as it is answered BUSY.
    await within(
      `connection ${i} to be served or refused, then closed`,
      new Promise<void>((resolve) => {
        const s = connect(path, () => s.write('{"id":1,"cmd":"events","args":{"limit":10000}}\n'));
        started = () => s.destroy();
        s.setEncoding('utf8');
        s.on('data', (d: string) => {
          if (d.includes('SEAWALL_CONTROL_BUSY')) busy++;
          s.destroy();
        });
        s.on('error', () => {});
        s.on('close', () => resolve());
      }),
    );
  }
  assert.equal(most, maxConnections, 'no more requests ran at once than connections are allowed');
  assert.equal(busy, 2 * maxConnections);
  assert.equal(server.connectionCount, maxConnections, 'the closed connections still hold their slots');
  hold = false;
  for (const release of held.splice(0)) release();
  await until('the slots to be free once the requests ended', () => server.connectionCount === 0);
  assert.deepEqual(await controlRequest(path, 'events'), []);
});

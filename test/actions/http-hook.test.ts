/**
 * The HTTP hook against a real server on 127.0.0.1 whose response bodies are hostile: a body that
 * never ends is read only as far as the detail needs and the connection is closed, the outcome
 * still follows the status; a character cut at the detail's bound is left out; a body that stalls
 * is bounded by the timeout or the daemon's stop, as before.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { HttpHook, type MigrationPayload } from '../../actions/index.js';
import { WAIT_MS, within } from '../helpers/wait.js';

const payload = {
  migrationId: 'm-1',
  vm: { id: 'v', labels: {} },
  poisonedPages: ['0x1000'],
} as unknown as MigrationPayload;

/** 64 KiB of 'x', then 2-byte 'é's, then 'x': the 512th byte is the first half of an 'é'. */
const CHUNK = Buffer.from(`x${'é'.repeat(32767)}x`);
/** Where the endless body gives up, so that a client that reads it all cannot keep the test going. */
const CAP = 256 * 1024 * 1024;
/** What the detail keeps of CHUNK: 511 bytes, the cut 'é' left out. */
const KEPT = `x${'é'.repeat(255)}`;

/** A server on 127.0.0.1, port 0, closed (with its connections) after the test; its base URL. */
async function serve(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer((req, res) => {
    req.resume();
    handler(req, res);
  });
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const hook = (url: string, timeoutMs: number) =>
  new HttpHook('orch', { url, timeoutMs, retries: 0, backoffMs: 0, maxBackoffMs: 0, headers: {} });

interface Streamed {
  /** Bytes handed to the socket before the response closed. */
  sent: number;
  /** Whether the server got to the end of the body (CAP) rather than seeing the client go. */
  finished: boolean;
}

/** Answers `status`, then writes CHUNKs as fast as the client takes them, until it goes or CAP. */
function endless(status: number, closed: (s: Streamed) => void) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    let sent = 0;
    res.once('close', () => closed({ sent, finished: res.writableFinished }));
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    const pump = () => {
      while (!res.destroyed && sent < CAP) {
        sent += CHUNK.length;
        if (!res.write(CHUNK)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  };
}

for (const [status, outcome] of [
  [200, 'accepted'],
  [409, 'refused'],
] as const) {
  test(`an endless ${status} body: ${outcome} without waiting for the timeout, 512 bytes kept, the connection closed`, async (t) => {
    let closed: (s: Streamed) => void = () => {};
    const streamed = within(
      'the server to see the response close',
      new Promise<Streamed>((resolve) => {
        closed = resolve;
      }),
    );
    const base = await serve(t, endless(status, closed));
    // The timeout is far past the wait's deadline: an outcome that waited for it fails the wait.
    const r = await within(`the ${status} outcome`, hook(`${base}/migrate`, 10 * WAIT_MS).run(payload));
    assert.equal(r.outcome, outcome);
    assert.equal(r.attempts, 1);
    const s = await streamed;
    t.diagnostic(`the server wrote ${s.sent} of ${CAP} bytes before the client went`);
    assert.equal(s.finished, false, 'the client went away before the end of the body');
    assert.ok(s.sent < CAP / 8, `the server wrote ${s.sent} of ${CAP} bytes before the client went`);
    const kept = (r.detail ?? '').slice(`HTTP ${status}: `.length);
    assert.ok(Buffer.byteLength(kept) <= 512, `${Buffer.byteLength(kept)} bytes of body kept`);
    assert.equal(r.detail, `HTTP ${status}: ${KEPT}`);
  });
}

test('a short body is the detail, whole', async (t) => {
  const body = 'poisoned memory: refused — ask again after the reload';
  const base = await serve(t, (_req, res) => res.writeHead(422).end(body));
  const r = await within('the 422 outcome', hook(`${base}/migrate`, 10 * WAIT_MS).run(payload));
  assert.deepEqual(r, { outcome: 'refused', detail: `HTTP 422: ${body}`, attempts: 1 });
});

/** Sends the status and a few bytes of body, then nothing; resolves once those bytes are out. */
function stalled(sent: () => void) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial', () => sent());
  };
}

test('a body that stalls before its end times out, as a missing answer does', async (t) => {
  const base = await serve(
    t,
    stalled(() => {}),
  );
  const r = await within('the timed-out outcome', hook(`${base}/migrate`, 300).run(payload));
  assert.deepEqual(r, { outcome: 'timed_out', detail: 'no answer within 300 ms', attempts: 1 });
});

test('the daemon stopping once part of a body is out ends the hook: failed', async (t) => {
  let sent: () => void = () => {};
  const out = within(
    'the partial body sent',
    new Promise<void>((resolve) => {
      sent = resolve;
    }),
  );
  const base = await serve(t, stalled(sent));
  const stop = new AbortController();
  const run = hook(`${base}/migrate`, 10 * WAIT_MS).run(payload, stop.signal);
  await out;
  stop.abort();
  const r = await within('the stopped outcome', run);
  assert.deepEqual(r, { outcome: 'failed', detail: 'daemon stopping', attempts: 1 });
});

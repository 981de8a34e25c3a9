/**
 * The HTTP hook against a real server on 127.0.0.1 whose response bodies are hostile: a body that
 * never ends is read only as far as the detail needs and the connection is closed, the outcome
 * still follows the status; a character cut at the detail's bound is left out; a body that stalls
 * costs the detail, never the outcome, which the status decided (a 2xx is not posted again); the
 * daemon's stop ends the hook whether or not the status has arrived.
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

/** Sends `status` and a few bytes of a body it never ends. */
function stalled(status: number) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.write('migration started');
  };
}

test('a 202 whose body never ends: accepted once the detail gives up, one POST, no retry', async (t) => {
  let posts = 0;
  const orchestrator = stalled(202);
  const base = await serve(t, (req, res) => {
    posts++;
    orchestrator(req, res);
  });
  // Retries allowed, and a timeout the status arrives well within even on a loaded machine: an
  // attempt that waited for the body would time out and be posted again.
  const retrying = new HttpHook('orch', {
    url: `${base}/migrate`,
    timeoutMs: 5000,
    retries: 2,
    backoffMs: 10,
    maxBackoffMs: 10,
    headers: {},
  });
  const r = await within('the 202 outcome', retrying.run(payload));
  assert.equal(r.outcome, 'accepted');
  assert.equal(r.attempts, 1);
  assert.match(r.detail ?? '', /^HTTP 202 \(body not read: none within \d+ ms\)$/);
  assert.equal(posts, 1, 'the orchestrator was asked once');
});

test('the daemon stopping while the body is read ends the hook at once; the status still decides', async (t) => {
  // The hook's fetch, told when the status is in: the stop then comes after it, whatever the timing.
  const fetched = globalThis.fetch;
  t.after(() => {
    globalThis.fetch = fetched;
  });
  let answered: () => void = () => {};
  const status = within(
    'the status to arrive',
    new Promise<void>((resolve) => {
      answered = resolve;
    }),
  );
  globalThis.fetch = async (...args) => {
    const res = await fetched(...args);
    answered();
    return res;
  };
  const base = await serve(t, stalled(409));
  const stop = new AbortController();
  const run = hook(`${base}/migrate`, 10 * WAIT_MS).run(payload, stop.signal);
  await status;
  stop.abort();
  const r = await within('the stopped outcome', run);
  assert.deepEqual(r, {
    outcome: 'refused',
    detail: 'HTTP 409 (body not read: daemon stopping)',
    attempts: 1,
  });
});

test('the daemon stopping before the status arrives ends the hook: failed', async (t) => {
  let asked: () => void = () => {};
  const posted = within(
    'the POST to arrive',
    new Promise<void>((resolve) => {
      asked = resolve;
    }),
  );
  const base = await serve(t, () => asked());
  const stop = new AbortController();
  const run = hook(`${base}/migrate`, 10 * WAIT_MS).run(payload, stop.signal);
  await posted;
  stop.abort();
  const r = await within('the stopped outcome', run);
  assert.deepEqual(r, { outcome: 'failed', detail: 'daemon stopping', attempts: 1 });
});

/**
 * The store's helper threads' requests (store/thread-requests.ts), on a real worker: answers and
 * failed answers reach their request, a thread that exits fails what waits on it and the next
 * request starts another, a request past its timeout ends the thread, and a timeout counts from
 * the thread's last answer, not from a post that waited behind other requests; with `idleMs`, a
 * thread with nothing to answer for that long ends, and one with a request waiting does not.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ThreadRequests } from '../../store/thread-requests.js';
import { within } from '../helpers/wait.js';

interface Reply {
  id: number;
  value?: string;
  error?: string;
}

// echo: answers; slow: answers after 100 ms asleep; fail: answers with an error; exit: the thread
// exits 3; hang: never answers; block: never answers, nor anything after it; object: throws what
// a better-sqlite3 error becomes on its way out of a thread.
const THREAD = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, op }) => {
  if (op === 'slow') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  if (op === 'block') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  if (op === 'echo' || op === 'slow') parentPort.postMessage({ id, value: 'echo ' + id });
  else if (op === 'fail') parentPort.postMessage({ id, error: 'refused' });
  else if (op === 'exit') process.exit(3);
  else if (op === 'object') throw { code: 'SQLITE_NOTADB' };
});
`;

function requests(idleMs?: number) {
  let started = 0;
  const workers: Worker[] = [];
  const thread = new ThreadRequests<Reply>({
    start: () => {
      started++;
      const worker = new Worker(THREAD, { eval: true });
      workers.push(worker);
      return worker;
    },
    answer: (m) => {
      if (m.error !== undefined) throw new Error(`failed: ${m.error}`);
      return m.value;
    },
    exited: (code) => new Error(`exited with ${code}`),
    failed: (reason) => new Error(`failed: ${reason}`),
    ...(idleMs !== undefined ? { idleMs } : {}),
  });
  return { thread, started: () => started, workers };
}

const ask = (thread: ThreadRequests<Reply>, op: string, timeout?: { ms: number; error: () => Error }) =>
  thread.ask((id) => ({ id, op }), timeout);

test('answers reach their request; a failed answer rejects it; the thread starts once', async () => {
  const { thread, started } = requests();
  assert.equal(thread.running, false, 'no thread before the first request');
  const [a, b] = await within('two answers', Promise.all([ask(thread, 'echo'), ask(thread, 'echo')]));
  assert.deepEqual([a, b], ['echo 1', 'echo 2']);
  await assert.rejects(within('a failed answer', ask(thread, 'fail')), /failed: refused/);
  assert.equal(started(), 1);
  await thread.stop(new Error('done'));
  assert.equal(thread.running, false);
});

test('a thread that exits fails every request waiting on it; the next request starts another', async () => {
  const { thread, started } = requests();
  const waiting = ask(thread, 'hang');
  await assert.rejects(within('the exit to fail the request', ask(thread, 'exit')), /exited with 3/);
  await assert.rejects(within('the other request to fail too', waiting), /exited with 3/);
  assert.equal(thread.running, false);
  assert.equal(await within('an answer from a new thread', ask(thread, 'echo')), 'echo 3');
  assert.equal(started(), 2);
  await thread.stop(new Error('done'));
});

test('a thread that throws what is not an Error fails what waits with its text', async () => {
  const { thread, started } = requests();
  const waiting = ask(thread, 'hang');
  await assert.rejects(within('the throw', ask(thread, 'object')), { message: 'failed: SQLITE_NOTADB' });
  await assert.rejects(within('the request waiting', waiting), { message: 'failed: SQLITE_NOTADB' });
  assert.equal(await within('an answer', ask(thread, 'echo')), 'echo 3');
  assert.equal(started(), 2);
});

test('a request past its timeout ends the thread and fails with the timeout error', async () => {
  const { thread } = requests();
  const other = ask(thread, 'hang');
  const timedOut = ask(thread, 'hang', { ms: 50, error: () => new Error('took too long') });
  await assert.rejects(within('the timeout', timedOut), /took too long/);
  await assert.rejects(within('the other request', other), /took too long/);
  assert.equal(thread.running, false, 'the thread was ended');
});

test('requests queued behind slow answers are not timed out while the thread keeps answering', async () => {
  const { thread } = requests();
  const timeout = { ms: 1500, error: () => new Error('took too long') };
  // 30 answers of 100 ms each: the last is posted 3 s before it is answered, twice its timeout,
  // but the thread answers something at least every 1.5 s.
  const answers = await within(
    'thirty slow answers',
    Promise.all(Array.from({ length: 30 }, () => ask(thread, 'slow', timeout))),
  );
  assert.equal(answers.length, 30);
  assert.equal(answers[29], 'echo 30');
  // And a thread that stops answering is still ended by the oldest request's timeout.
  const stuck = ask(thread, 'block', { ms: 50, error: () => new Error('hung') });
  const behind = ask(thread, 'echo', timeout);
  await assert.rejects(within('the hung request', stuck), /hung/);
  await assert.rejects(within('the request behind it', behind), /hung/);
  assert.equal(thread.running, false);
});

test('with idleMs, a thread that has answered everything ends; the next request starts another', async (t) => {
  const { thread, started, workers } = requests(50);
  t.after(() => thread.stop(new Error('done')));
  assert.equal(await within('an answer', ask(thread, 'echo')), 'echo 1');
  const first = workers[0] as Worker;
  await within('the idle thread to exit', once(first, 'exit'));
  assert.equal(thread.running, false);
  assert.equal(await within('an answer from a new thread', ask(thread, 'echo')), 'echo 2');
  assert.equal(started(), 2);
});

test('with idleMs, a thread with a request still waiting is not ended as idle', async (t) => {
  const { thread, started, workers } = requests(20);
  t.after(() => thread.stop(new Error('done')));
  const waiting = ask(thread, 'hang');
  waiting.catch(() => {});
  // Answers come and go while the first request waits: each arms nothing, as one is still waiting.
  for (let i = 0; i < 5; i++) await within('an answer', ask(thread, 'echo'));
  let exited = false;
  (workers[0] as Worker).once('exit', () => {
    exited = true;
  });
  // Ten idle times with a request waiting: the thread stays (a window, not a synchronisation).
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(exited, false);
  assert.equal(thread.running, true);
  assert.equal(started(), 1);
});

/**
 * kvm/thread-policy.ts: the rule for leaving SCHED_IDLE, from /proc facts, and the same rule
 * checked against the running kernel — as root, and as an unprivileged user whose RLIMIT_NICE is 0,
 * where the kernel lets a thread into SCHED_IDLE and refuses it the way out.
 */
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  idleFacts,
  mayLeaveIdle,
  SCHED_IDLE,
  SCHED_OTHER,
  setThreadPolicy,
  threadPolicy,
} from '../../kvm/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { nextEvent, within } from '../helpers/wait.js';

const INIT_NS = 'user:[4026531837]';
const status = (capEff: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\n`;
const limits = (soft: string) =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax nice priority         ${soft}                    ${soft}                    \n`;

test('CAP_SYS_NICE in the initial user namespace, or RLIMIT_NICE of 20 − nice, allows the way back', () => {
  const withCap = status('0000000000800000'); // bit 23 only
  const noCap = status('0000000000000020'); // CAP_KILL only
  assert.equal(mayLeaveIdle({ status: withCap, limits: limits('0'), userNs: INIT_NS, nice: 0 }), true);
  assert.equal(
    mayLeaveIdle({ status: withCap, limits: limits('0'), userNs: 'user:[4026532501]', nice: 0 }),
    false,
    'a capability held in a child user namespace does not count',
  );
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('0'), userNs: INIT_NS, nice: 0 }), false);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('20'), userNs: INIT_NS, nice: 0 }), true);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('19'), userNs: INIT_NS, nice: 0 }), false);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('20'), userNs: INIT_NS, nice: -5 }), false);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('25'), userNs: INIT_NS, nice: -5 }), true);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('15'), userNs: INIT_NS, nice: 5 }), true);
  assert.equal(mayLeaveIdle({ status: noCap, limits: limits('unlimited'), userNs: INIT_NS, nice: 0 }), true);
  assert.equal(mayLeaveIdle({ status: '', limits: '', userNs: '', nice: 0 }), false, 'unknown is no');
  assert.equal(mayLeaveIdle(null), false, 'no /proc is no');
});

/**
 * In a fresh process: what the rule says for that process, and what the kernel then does with one
 * of its threads. The policy is set from the main thread on a worker thread that only waits, as
 * the daemon's event loop sets its writer thread's. A worker left in SCHED_IDLE would need CPU to
 * be torn down at exit, which a busy machine may not give it for many seconds: so the probe
 * answers, then waits for stdin to close, and this (root) process first moves that worker back.
 */
const PROBE = `
import { idleFacts, mayLeaveIdle, setThreadPolicy, threadPolicy, SCHED_IDLE, SCHED_OTHER } from ${JSON.stringify(
  fileURLToPath(new URL('../../kvm/thread-policy.ts', import.meta.url)),
)};
import { Worker } from 'node:worker_threads';
const worker = new Worker(
  "Promise.all([import('node:worker_threads'), import('node:fs')]).then(([w, fs]) => w.parentPort.postMessage(fs.readlinkSync('/proc/thread-self'))); setInterval(() => {}, 60000);",
  { eval: true },
);
const tid = Number((await new Promise((resolve) => worker.once('message', resolve))).split('/').pop());
const may = mayLeaveIdle(idleFacts());
const into = setThreadPolicy(tid, SCHED_IDLE);
const idle = threadPolicy(tid);
const back = setThreadPolicy(tid, SCHED_OTHER);
console.log(JSON.stringify({ tid, may, into, idle, back, after: threadPolicy(tid) }));
process.stdin.on('end', () => process.exit(0)).resume();
`;

async function probe(t: TestContext, uid?: number): Promise<Record<string, unknown>> {
  const child = spawnOwned(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROBE], {
    ...(uid === undefined ? {} : { uid, gid: uid }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(child, 'the probe'));
  const [line] = await nextEvent<[string]>(
    createInterface({ input: child.stdout as NodeJS.ReadableStream }),
    'line',
    'the probe to answer',
  );
  const { tid, ...answer } = JSON.parse(line) as Record<string, unknown>;
  // Whatever the probe could not undo, root can; then its worker ends with it at once.
  assert.equal(setThreadPolicy(tid as number, SCHED_OTHER), null);
  child.stdin?.end();
  assert.deepEqual(await within('the probe to exit', exitOf(child)), { code: 0, signal: null });
  return answer;
}

test('the kernel agrees: a process the rule allows goes into SCHED_IDLE and back', async (t) => {
  const facts = idleFacts();
  assert.ok(facts, '/proc/self is readable');
  if (!mayLeaveIdle(facts)) return t.skip('this process may not leave SCHED_IDLE (no CAP_SYS_NICE)');
  assert.deepEqual(await probe(t), {
    may: true,
    into: null,
    idle: SCHED_IDLE,
    back: null,
    after: SCHED_OTHER,
  });
});

test('the kernel agrees: an unprivileged process the rule refuses cannot leave SCHED_IDLE', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the probe as another uid');
  const facts = idleFacts();
  if (facts && /^Max nice priority\s+(\d+)/m.exec(facts.limits)?.[1] !== '0')
    return t.skip('RLIMIT_NICE is raised here: nobody may leave SCHED_IDLE too');
  assert.deepEqual(await probe(t, 65534), {
    may: false,
    into: null,
    idle: SCHED_IDLE,
    back: 'EPERM',
    after: SCHED_IDLE,
  });
});

test('setThreadPolicy reports a thread that does not exist instead of throwing', () => {
  assert.equal(setThreadPolicy(0x3fffffff, SCHED_OTHER), 'ESRCH');
  assert.equal(threadPolicy(0x3fffffff), null);
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  assert.equal(threadPolicy(tid), SCHED_OTHER, "this test's own thread is a normal one");
});

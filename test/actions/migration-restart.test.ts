/**
 * What the migration manager knew before a restart, for the same VM instance after it: the action
 * layer is closed (as the daemon stops) and made again on the same state file (as it starts), and
 * a session of the same VM id from the same live process — its pid and start time — takes on the
 * earlier acceptance (folded, not asked again), refusal (not asked again under that policy
 * version) or pending migration (asked again under the same id, the Idempotency-Key the
 * orchestrator saw, and with the same body when it was sent). Another process, or an entry whose
 * start time is not the process's, is another instance, asked afresh; what no session claims is
 * forgotten after its bound. Real HTTP hook against a server on 127.0.0.1, real files, real pidfds:
 * the "VMMs" are this process and a child.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import {
  type Actions,
  ActionsConfigSchema,
  createActions,
  MigrationMemory,
  type MigrationResult,
  processStartTicks,
} from '../../actions/index.js';
import type { SessionInfo } from '../../events/index.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { seaEvent } from '../policies/fixtures.js';
import { type HeldRequest, heldServer } from './held-server.js';
import { migrateDecision, sessionOf } from './migrate-fixtures.js';

const hook = heldServer();
const { when, requestsFor } = hook;
before(() => hook.listen());
after(() => hook.close());

const decision = migrateDecision('p1');
const otherVersion = migrateDecision('p2');
const of = (vm: string, id: bigint, pid = process.pid) => sessionOf(vm, id, pid);

let nextId = 1n;
let gpaPage = 0;

/** One run of the action layer on `path`, as a daemon has it between start and stop. */
function run(t: TestContext, path: string, maxHooksInFlight = 8) {
  const results: MigrationResult[] = [];
  const warnings: string[] = [];
  const actions: Actions = createActions(
    ActionsConfigSchema.parse({ kill: { enforce: false }, maxHooksInFlight }),
    {
      hooks: new Map([['orchestrator', hook.hook()]]),
      migration: {
        onFinished: (m) => {
          results.push(m);
          hook.wake();
        },
      },
    },
  );
  actions.remember(path, (m) => warnings.push(m), 16);
  let closed: Promise<void> | null = null;
  const stop = () => {
    closed ??= actions.close();
    return closed;
  };
  t.after(stop);
  const open = (vm: string, pid = process.pid) => {
    const s = of(vm, nextId++, pid);
    actions.kills.sessionOpened(s);
    actions.migrations.sessionOpened(s);
    return s;
  };
  const close = (s: SessionInfo) => {
    actions.migrations.sessionClosed(s, 'disconnect');
    actions.kills.sessionClosed(s, 'disconnect');
  };
  // Each error at a page of its own: a payload built again would differ from the one sent.
  const trigger = (s: SessionInfo, d = decision) =>
    actions.migrations.trigger(
      s,
      d,
      seaEvent({ vm: { id: s.vm.id }, gpa: `0x${(++gpaPage * 0x1000).toString(16)}` }),
      1,
    );
  return { actions, results, warnings, open, close, trigger, stop };
}

function statePath(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-mrestart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'migrations.json');
}

type Run = ReturnType<typeof run>;

/**
 * A migration of `s` started in `r`, and its hook request, the VM's `n`-th, seen; answered with
 * `status` when one is given, and that answer awaited.
 */
async function ask(r: Run, s: SessionInfo, n: number, status?: number, d = decision): Promise<HeldRequest> {
  assert.equal(r.trigger(s, d), 'started');
  await when(`hook request ${n} of ${s.vm.id}`, () => requestsFor(s.vm.id).length === n);
  const req = requestsFor(s.vm.id)[n - 1] as HeldRequest;
  if (status !== undefined) {
    req.res.writeHead(status).end();
    await until(`the answer ${status}`, () => r.actions.migrations.pending === 0);
  }
  return req;
}

test('accepted before the restart: folded after it, the hook not asked again', async (t) => {
  const path = statePath(t);
  const vm = 'restart-accepted';
  const first = run(t, path);
  const a = first.open(vm);
  await ask(first, a, 1, 202);
  // The daemon stops: its sessions end first, kept for their VM's reconnect.
  first.close(a);
  await first.stop();
  // Closed twice: the second does not write what is left after the first over it.
  await first.actions.close();
  const second = run(t, path);
  assert.deepEqual(second.warnings, []);
  const b = second.open(vm);
  assert.equal(second.trigger(b), 'accepted-already');
  assert.equal(second.actions.migrations.pending, 0);
  assert.equal(requestsFor(vm).length, 1);
  // A reconnect within this run carries it on, as before.
  second.close(b);
  assert.equal(second.trigger(second.open(vm)), 'accepted-already');
});

test('refused before the restart: not asked again under that policy version; a new version asks', async (t) => {
  const path = statePath(t);
  const vm = 'restart-refused';
  const first = run(t, path);
  const refused = await ask(first, first.open(vm), 1, 409);
  await first.stop();
  const second = run(t, path);
  const b = second.open(vm);
  assert.equal(second.trigger(b), 'refused-already');
  const again = await ask(second, b, 2, 202, otherVersion);
  assert.notEqual(again.key, refused.key, 'a new request, a new id');
});

test('pending at the stop: asked again at the next error under the same id', async (t) => {
  const path = statePath(t);
  const vm = 'restart-pending';
  const first = run(t, path);
  const pending = await ask(first, first.open(vm), 1);
  assert.equal(pending.body.migrationId, pending.key);
  // Stopped while the hook runs: ended `failed`, daemon stopping; its id is kept.
  await first.stop();
  assert.deepEqual(
    first.results.filter((r) => r.vm === vm).map((r) => [r.outcome, r.detail]),
    [['failed', 'daemon stopping']],
  );
  const second = run(t, path);
  const again = await ask(second, second.open(vm), 2, 202);
  assert.equal(again.key, pending.key, 'the same Idempotency-Key');
  assert.equal(again.raw, pending.raw, 'the same body, byte for byte');
});

test('queued at the stop, never sent: asked again under its id, with what is known now', async (t) => {
  const path = statePath(t);
  const [busy, vm] = ['restart-busy', 'restart-queued'];
  const first = run(t, path, 1);
  await ask(first, first.open(busy), 1);
  const a = first.open(vm);
  assert.equal(first.trigger(a), 'queued');
  await first.stop();
  assert.equal(requestsFor(vm).length, 0);
  const id = first.results.find((r) => r.vm === vm)?.migrationId;
  assert.ok(id);
  const second = run(t, path, 1);
  const again = await ask(second, second.open(vm), 1, 202);
  assert.equal(again.key, id, 'the same Idempotency-Key');
  assert.equal(again.body.requestedAt, new Date(second.results[0]?.queuedAtMs ?? 0).toISOString());
});

test('another process with the VM id, or the pid with another start time: another instance', async (t) => {
  const path = statePath(t);
  const vm = 'restart-other';
  const first = run(t, path);
  const accepted = await ask(first, first.open(vm), 1, 202);
  await first.stop();
  const saved = readFileSync(path, 'utf8');
  // A VMM process of its own for the same VM id (the VM restarted in another process).
  const child = spawnOwned('/bin/sleep', ['600'], { stdio: 'ignore' });
  t.after(() => killOwned(child));
  const second = run(t, path);
  const other = await ask(second, second.open(vm, child.pid as number), 2, 202);
  assert.notEqual(other.key, accepted.key, 'asked afresh');
  await second.stop();
  // The same pid with another start time (the pid reused): dropped at load, never matched.
  const entry = JSON.parse(saved).entries[0];
  assert.equal(entry.startTicks, processStartTicks(process.pid));
  writeFileSync(
    path,
    JSON.stringify({ version: 1, entries: [{ ...entry, startTicks: entry.startTicks + 1 }] }),
  );
  const third = run(t, path);
  const reused = await ask(third, third.open(vm), 3, 202);
  assert.notEqual(reused.key, accepted.key, 'asked afresh');
});

test('a claim needs the start time too; what no session claims is forgotten after its bound', async () => {
  let alive = true;
  const memory = new MigrationMemory({ alive: () => alive });
  let changes = 0;
  let forgotten: () => void = () => {};
  const expired = new Promise<void>((resolve) => {
    forgotten = resolve;
  });
  memory.onChange = () => {
    changes++;
    if (memory.unclaimed === 0) forgotten();
  };
  const start = processStartTicks(process.pid) as number;
  const entry = (vm: string, startTicks = start) => ({
    vm,
    pid: process.pid,
    startTicks,
    accepted: crypto.randomUUID(),
  });
  // Read back as it is (the loader drops these; the claim checks again).
  memory.restore([entry('claimed'), entry('reused', start + 1), entry('unclaimed')], 50);
  assert.equal(memory.unclaimed, 3);
  const r = of('reused', 9000n);
  memory.opened(r.id, r);
  assert.equal(memory.accepted(r.id), false, 'the pid, with another start time: not the instance');
  // A process not known to be alive after the read: its pid may have named another.
  alive = false;
  const gone = of('claimed', 9001n);
  memory.opened(gone.id, gone);
  assert.equal(memory.accepted(gone.id), false);
  alive = true;
  const s = of('claimed', 9002n);
  memory.opened(s.id, s);
  assert.equal(memory.accepted(s.id), true);
  assert.equal(memory.unclaimed, 2);
  assert.equal(changes, 1, 'the claim is a change to write');
  await within('the unclaimed entries forgotten', expired);
  assert.equal(changes, 2);
  assert.deepEqual(
    memory.snapshot([]).map((e) => e.vm),
    ['claimed'],
  );
  memory.close();
});

test('requests sent kept across restarts: never more than the next start reads back', async (t) => {
  const path = statePath(t);
  const [a, b, c] = ['restart-chain-a', 'restart-chain-b', 'restart-chain-c'];
  // Run 1: a's hook runs at the stop.
  const first = run(t, path, 1);
  const sentA = await ask(first, first.open(a), 1);
  await first.stop();
  // Run 2: a reconnects and has no error; c is accepted; b's hook runs at the stop.
  const second = run(t, path, 1);
  assert.deepEqual(second.warnings, []);
  second.open(a);
  await ask(second, second.open(c), 1, 202);
  const sentB = await ask(second, second.open(b), 1);
  await second.stop();
  const saved = JSON.parse(readFileSync(path, 'utf8')) as { entries: Array<{ vm: string; sent?: unknown }> };
  assert.deepEqual(
    saved.entries.filter((e) => e.sent !== undefined).map((e) => e.vm),
    [b],
    'the hook running at the stop keeps its request; a, sent a run before, gives way',
  );
  // Run 3: the file is used whole; c's acceptance holds, b is asked as it was, a afresh.
  const third = run(t, path, 1);
  assert.deepEqual(third.warnings, []);
  assert.equal(third.trigger(third.open(c)), 'accepted-already');
  const againB = await ask(third, third.open(b), 2, 202);
  assert.equal(againB.key, sentB.key, 'the same Idempotency-Key');
  assert.equal(againB.raw, sentB.raw, 'the same body, byte for byte');
  const againA = await ask(third, third.open(a), 2, 202);
  assert.notEqual(againA.key, sentA.key, 'not its id with another body: a new id');
});

test('a file with more requests sent than the loader keeps (an older build): used, and written anew', async (t) => {
  const path = statePath(t);
  const [a, b] = ['restart-older-a', 'restart-older-b'];
  // What an older build wrote: a request sent a run before its stop, and one running at it.
  const first = run(t, path, 2);
  const sentA = await ask(first, first.open(a), 1);
  const sentB = await ask(first, first.open(b), 1);
  await first.stop();
  const second = run(t, path, 1);
  assert.equal(second.warnings.length, 1);
  assert.match(
    second.warnings[0] ?? '',
    /holds more requests sent than the 1 kept.*the rest of the file is used/,
  );
  await until('the file written anew', () => !/restart-older-b/.test(readFileSync(path, 'utf8')));
  const againA = await ask(second, second.open(a), 2, 202);
  assert.equal(againA.raw, sentA.raw, 'the first kept: the same body, byte for byte');
  const againB = await ask(second, second.open(b), 2, 202);
  assert.notEqual(againB.key, sentB.key, 'not its id with another body: a new id');
});

/**
 * The migration manager's side of a reconnect (migration-reconnect.test.ts has the plugin's): a
 * session from a PID whose process has exited is another VM instance, even before the exit has
 * been seen; a next session that opens before the earlier one closed takes its migration on too;
 * and what is kept of ended sessions is bounded, forgotten when their process exits or their VM's
 * next session opens, and their pidfds' holds released once; a trigger handed over after its
 * session ended still carries, and a VM its plugin said was exiting starts afresh. Real HTTP hook against a server on
 * 127.0.0.1, real kill manager and pidfds: the "VMMs" are this process and `sleep` children.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KillManager, MigrationManager, PoisonedPages } from '../../actions/index.js';
import type { SessionInfo, SessionOutcome } from '../../events/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, WAIT_MS, within } from '../helpers/wait.js';
import { seaEvent } from '../policies/fixtures.js';
import { heldServer } from './held-server.js';
import { migrateDecision, sessionOf } from './migrate-fixtures.js';

const hook = heldServer();
const { when, requestsFor } = hook;
before(() => hook.listen());
after(() => hook.close());

/** A manager with the real HTTP hook and kill manager, for sessions made by hand. */
function manager(t: { after: (fn: () => void) => void }, maxEndedKept?: number) {
  const kills = new KillManager({ enforce: false });
  const m = new MigrationManager({
    hooks: new Map([['orchestrator', hook.hook()]]),
    kills,
    pages: new PoisonedPages({ perVm: 8, vms: 8 }),
    host: 'h',
    maxInFlight: 4,
    maxQueued: 4,
    ...(maxEndedKept === undefined ? {} : { maxEndedKept }),
  });
  t.after(() => {
    m.close();
    kills.close();
  });
  // The action sink's order: the migration manager hears of an end first.
  const open = (s: SessionInfo) => {
    kills.sessionOpened(s);
    m.sessionOpened(s);
  };
  const close = (s: SessionInfo, outcome: SessionOutcome = 'disconnect') => {
    m.sessionClosed(s, outcome);
    kills.sessionClosed(s, outcome);
  };
  return { m, kills, open, close };
}

const decision = migrateDecision();
const of = sessionOf;

/** A stand-in VMM: its pid is what the sessions name. */
function child(t: { after: (fn: () => Promise<unknown>) => void }) {
  const p = spawnOwned('/bin/sleep', ['600'], { stdio: 'ignore' });
  t.after(() => killOwned(p));
  return p;
}

test('the same PID after its process exited is another VM instance; an ended session goes at that exit', async (t) => {
  const { m, kills, open, close } = manager(t);
  const vmm = child(t);
  const vm = 'carry-dead';
  const a = of(vm, 1001n, vmm.pid as number);
  open(a);
  assert.equal(m.trigger(a, decision, seaEvent({ vm: { id: vm } }), 1), 'started');
  await when('the hook request', () => requestsFor(vm).length === 1);
  close(a);
  assert.equal(m.endedKept, 1, 'kept for the next session while its process lives');
  vmm.kill('SIGKILL');
  // B opens before the event loop turns, so before the exit watch forgets A: the pidfd itself must
  // say the process is gone. Its exit is awaited without turning the loop: the pidfd is polled,
  // 1 ms apart, up to the usual deadline.
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const deadline = performance.now() + WAIT_MS;
  while (kills.alive(a.id)) {
    if (performance.now() > deadline) assert.fail('the SIGKILLed VMM still runs');
    Atomics.wait(tick, 0, 0, 1);
  }
  assert.equal(m.endedKept, 1);
  const b = of(vm, 1002n, vmm.pid as number);
  open(b);
  assert.equal(m.endedKept, 0, 'forgotten once the next session opened');
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 1), 'queued', 'a migration of its own');
  // Another VM's ended session is forgotten when its process exits, its pidfd's hold released.
  const other = child(t);
  const c = of('carry-exit', 1003n, other.pid as number);
  open(c);
  assert.equal(m.trigger(c, decision, seaEvent({ vm: { id: c.vm.id } }), 1), 'started');
  await when('its hook request', () => requestsFor(c.vm.id).length === 1);
  requestsFor(c.vm.id)[0]?.res.writeHead(202).end();
  await until("C's answer", () => m.pending === 2); // A's and B's still wait
  close(c);
  assert.equal(m.endedKept, 1, 'its acceptance kept for its next session');
  assert.equal(kills.alive(c.id), true);
  other.kill('SIGKILL');
  await within('the second VMM to exit', exitOf(other));
  await until('the ended session forgotten at its process exit', () => m.endedKept === 0);
  assert.equal(kills.alive(c.id), false, "C's pidfd is no longer held");
  requestsFor(vm)[0]?.res.writeHead(202).end();
  await when("B's own hook request", () => requestsFor(vm).length === 2);
  requestsFor(vm)[1]?.res.writeHead(202).end();
  await until('every answer', () => m.pending === 0);
  assert.equal(kills.alive(a.id), false, "A's pidfd is no longer held");
});

test('a reconnect before the old session closed carries too; what is kept is bounded and released once', async (t) => {
  const { m, kills, open, close } = manager(t, 2);
  const vm = 'carry-early';
  const a = of(vm, 2001n, process.pid);
  open(a);
  assert.equal(m.trigger(a, decision, seaEvent({ vm: { id: vm } }), 1), 'started');
  await when('the hook request', () => requestsFor(vm).length === 1);
  // B's HELLO comes while A is still closing.
  const b = of(vm, 2002n, process.pid);
  open(b);
  close(a);
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 1), 'coalesced');
  assert.equal(m.endedKept, 0, 'the next session had already opened');
  requestsFor(vm)[0]?.res.writeHead(202).end();
  await until('the answer', () => m.pending === 0);
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 2), 'accepted-already');
  close(b);
  assert.equal(m.endedKept, 1);
  assert.equal(kills.alive(b.id), true, "B's pidfd is held for its successor");
  // Two more VMs of this process end accepted: at most two ended sessions are kept, oldest out.
  const more = ['carry-bound-1', 'carry-bound-2'].map((v, i) => of(v, 2100n + BigInt(i), process.pid));
  for (const s of more) {
    open(s);
    assert.equal(m.trigger(s, decision, seaEvent({ vm: { id: s.vm.id } }), 1), 'started');
  }
  await when('their hook requests', () => more.every((s) => requestsFor(s.vm.id).length === 1));
  for (const s of more) requestsFor(s.vm.id)[0]?.res.writeHead(202).end();
  await until('their answers', () => m.pending === 0);
  for (const s of more) close(s);
  assert.equal(m.endedKept, 2);
  assert.equal(kills.alive(b.id), false, "the oldest, B, was forgotten and its pidfd's hold released");
  // A session of B's VM now starts afresh; one of a kept VM from the same process carries.
  const c = of(vm, 2003n, process.pid);
  open(c);
  assert.equal(m.trigger(c, decision, seaEvent({ vm: { id: vm } }), 1), 'started');
  const d = of('carry-bound-2', 2200n, process.pid);
  open(d);
  assert.equal(m.endedKept, 1, 'forgotten once the next session opened');
  assert.equal(m.trigger(d, decision, seaEvent({ vm: { id: d.vm.id } }), 1), 'accepted-already');
  assert.equal(kills.alive(more[1]?.id as bigint), false, 'its hold released when D took its state on');
});

test("a trigger that comes after its session ended is the reconnected session's migration too", async (t) => {
  const { m, kills, open, close } = manager(t);
  const vm = 'carry-late';
  const a = of(vm, 3001n, process.pid);
  open(a);
  // The action sink holds A for its decision, and hands it over on the next turn: the plugin
  // dropped the connection (its deadline passed) in between.
  assert.equal(kills.hold(a.id), true);
  close(a);
  assert.equal(m.trigger(a, decision, seaEvent({ vm: { id: vm } }), 1), 'started');
  kills.release(a.id);
  await when('the hook request', () => requestsFor(vm).length === 1);
  const b = of(vm, 3002n, process.pid);
  open(b);
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 2), 'coalesced');
  requestsFor(vm)[0]?.res.writeHead(202).end();
  await until('the answer', () => m.pending === 0);
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 3), 'accepted-already');
  assert.equal(requestsFor(vm).length, 1, 'the hook was asked once');
});

test('after GOODBYE VM_EXITING a session of that VM id from the same process is the VM restarted', async (t) => {
  const { m, open, close } = manager(t);
  const vm = 'carry-exiting';
  const a = of(vm, 4001n, process.pid);
  open(a);
  assert.equal(m.trigger(a, decision, seaEvent({ vm: { id: vm } }), 1), 'started');
  await when('the hook request', () => requestsFor(vm).length === 1);
  requestsFor(vm)[0]?.res.writeHead(409).end();
  await until('the refusal', () => m.pending === 0);
  close(a, 'vm_exiting');
  assert.equal(m.endedKept, 0, 'nothing kept for a VM that went');
  const b = of(vm, 4002n, process.pid);
  open(b);
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 1), 'started', 'a migration of its own');
  await when('its hook request', () => requestsFor(vm).length === 2);
  requestsFor(vm)[1]?.res.writeHead(202).end();
  await until('its answer', () => m.pending === 0);
});

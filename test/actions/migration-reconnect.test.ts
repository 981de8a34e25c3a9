/**
 * A plugin that loses its connection and connects again at once, from the same process, for the
 * same VM is the same VM: the migration its first session asked for is its next session's. The hook
 * is not asked twice (an orchestrator answering the duplicate with 409 once had onFailure kill a VM
 * it was moving), and a refusal is not asked again. A session of the VM from another process — or
 * from a PID whose process has exited — is another VM instance, migrated on its own. Real HTTP hook
 * against a server on 127.0.0.1, the in-process plugin server and action sink; the plugin of the
 * "same process" is this test process itself, the other one a child.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type Actions,
  ActionsConfigSchema,
  createActions,
  HttpHook,
  KillManager,
  type KillRecord,
  MigrationManager,
  type MigrationPayload,
  type MigrationResult,
  PoisonedPages,
} from '../../actions/index.js';
import type { SessionInfo } from '../../events/index.js';
import { CAP, VERDICT_FLAG } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { provider, type Stack, startStack, type TestDecision } from '../attach/stack.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, WAIT_MS, within } from '../helpers/wait.js';
import { policyFrom, seaEvent } from '../policies/fixtures.js';
import { session } from '../store/records.js';
import { spawnVmm, type VmmChild } from './vmm-child.js';

interface Seen {
  body: MigrationPayload;
  res: ServerResponse;
}
/** Every hook request, held until the test answers it. */
const seen: Seen[] = [];
/** Called on whatever a wait may look at: a request, a result, a session opened or closed. */
const changed: Array<() => void> = [];
const wake = () => {
  for (const f of changed.splice(0)) f();
};
const http = createServer((req: IncomingMessage, res) => {
  let data = '';
  req.on('data', (c: Buffer) => {
    data += c.toString();
  });
  req.on('end', () => {
    seen.push({ body: JSON.parse(data), res });
    wake();
  });
});
const hookUrl = () => `http://127.0.0.1:${(http.address() as AddressInfo).port}/migrate`;

/** Resolves once `pred` holds, checked again at each change. */
const when = (what: string, pred: () => boolean, state?: () => string) =>
  within(
    what,
    new Promise<void>((resolve) => {
      const check = () => (pred() ? resolve() : changed.push(check));
      check();
    }),
    state ? { state } : {},
  );

const DABT_SEA = (0x24n << 26n) | (1n << 25n) | 0x10n;
const MIGRATE: TestDecision = {
  rule: 'move',
  action: 'migrate',
  hook: 'orchestrator',
  scope: 'vm',
  meanwhile: { kind: 'data', via: 'kvm' },
  onFailure: { action: 'kill', graceMs: 0 },
} as TestDecision;

let stack: Stack;
let actions: Actions;
const results: MigrationResult[] = [];
const kills: KillRecord[] = [];
const opened: SessionInfo[] = [];
const closed: SessionInfo[] = [];
const vmms: VmmChild[] = [];

before(async () => {
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  stack = await startStack(provider(() => MIGRATE));
  actions = createActions(
    ActionsConfigSchema.parse({
      hooks: { orchestrator: { type: 'http', url: hookUrl(), timeoutMs: 60_000, retries: 0 } },
      // onFailure's kills are recorded, never sent: the "VMM" of most tests is this process.
      kill: { enforce: false },
      hostName: 'test-host',
    }),
    {
      migration: {
        onFinished: (m) => {
          results.push(m);
          wake();
        },
      },
      kill: { onStarted: (k) => kills.push(k) },
    },
  );
  stack.bus.add(actions.sink);
  stack.bus.add({
    name: 'sessions',
    sessionOpened: (s) => {
      opened.push(s);
      wake();
    },
    sessionClosed: (s) => {
      closed.push(s);
      wake();
    },
  });
});

after(async () => {
  for (const vmm of vmms) await vmm.kill();
  actions.close();
  await stack.close();
  http.closeAllConnections();
  http.close();
});

async function plugin(vmId: string): Promise<PluginClient> {
  const n = opened.length;
  const c = new PluginClient({
    socket: stack.socket,
    vmId,
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  await when(`the session of ${vmId} opened`, () => opened.length > n);
  return c;
}

async function closeSession(c: PluginClient, vmId: string): Promise<void> {
  const n = closed.filter((s) => s.vm.id === vmId).length;
  await c.close();
  await when(`the session of ${vmId} closed`, () => closed.filter((s) => s.vm.id === vmId).length > n);
}

/** Triggers handed to the migration manager so far, whatever it made of them. */
const handed = () => {
  const s = actions.migrations.stats;
  return s.started + s.coalesced + s.refusedAlready + s.dropped;
};

/** One SEA exit; resolves once its migrate decision has been handed to the manager. */
async function sea(c: PluginClient, gpa: bigint): Promise<void> {
  const n = handed();
  const out = await c.handleExit({ type: 'sea', vcpu: 0, kvmFlags: 1n, esr: DABT_SEA, gva: 0n, gpa });
  assert.equal(out.verdict.flags & VERDICT_FLAG.MIGRATING, VERDICT_FLAG.MIGRATING);
  await until('the trigger handed to the migration manager', () => handed() > n);
}

const requestsFor = (vm: string) => seen.filter((s) => s.body.vm.id === vm);

/** A session of `vm` from this process asks for a migration and ends while the hook runs. */
async function askedThenGone(vm: string): Promise<void> {
  const a = await plugin(vm);
  await sea(a, 0x10000n);
  await when('the hook request', () => requestsFor(vm).length === 1);
  await closeSession(a, vm);
}

test('reconnected from the same process while the hook runs: asked once, and its acceptance holds', async () => {
  const vm = 'carry-accepted';
  const startedBefore = actions.migrations.stats.started;
  // The plugin loses its connection while the hook runs, and connects again for the same VM.
  await askedThenGone(vm);
  const b = await plugin(vm);
  try {
    await sea(b, 0x11000n);
    assert.equal(actions.migrations.stats.started, startedBefore + 1, "B's trigger folded into A's");
    requestsFor(vm)[0]?.res.writeHead(202).end();
    await when('the migration result', () => results.some((r) => r.vm === vm));
    // Nothing else waits to ask the hook again for this VM.
    assert.equal(actions.migrations.pending, 0);
    const r = results.filter((x) => x.vm === vm);
    assert.deepEqual(
      r.map((x) => [x.outcome, x.coalesced]),
      [['accepted', 1]],
    );
    // A further error in B: the orchestrator is moving the VM; nothing is asked.
    await sea(b, 0x12000n);
    assert.equal(actions.migrations.stats.started, startedBefore + 1);
    assert.equal(actions.migrations.pending, 0);
    assert.equal(requestsFor(vm).length, 1);
  } finally {
    await closeSession(b, vm);
  }
  // Another reconnect, with nothing running any more: the acceptance still holds for the VM.
  const c = await plugin(vm);
  try {
    await sea(c, 0x13000n);
    assert.equal(actions.migrations.stats.started, startedBefore + 1);
    assert.equal(requestsFor(vm).length, 1);
  } finally {
    await c.close();
  }
});

test('reconnected from the same process, then refused: B is not asked again, onFailure ran once', async () => {
  const vm = 'carry-refused';
  const startedBefore = actions.migrations.stats.started;
  await askedThenGone(vm);
  const b = await plugin(vm);
  try {
    await sea(b, 0x11000n);
    requestsFor(vm)[0]?.res.writeHead(409).end('poisoned memory: refused');
    await when('the migration result', () => results.some((r) => r.vm === vm));
    assert.equal(actions.migrations.pending, 0, 'no second migration waits for the hook');
    assert.deepEqual(
      results.filter((x) => x.vm === vm).map((x) => [x.outcome, x.coalesced, x.onFailure]),
      [['refused', 1, 'kill']],
    );
    const refusedBefore = actions.migrations.stats.refusedAlready;
    await sea(b, 0x12000n);
    assert.equal(actions.migrations.stats.refusedAlready, refusedBefore + 1, 'refused already');
    assert.equal(actions.migrations.stats.started, startedBefore + 1);
    assert.equal(requestsFor(vm).length, 1);
    // onFailure ran once, for the process both sessions came from.
    assert.deepEqual(
      kills.filter((k) => k.vm === vm).map((k) => [k.reason, k.peerPid]),
      [['migration_refused', process.pid]],
    );
  } finally {
    await b.close();
  }
});

test('the VM back from another process while the hook runs: a migration of its own, as before', async () => {
  const vm = 'carry-other';
  const startedBefore = actions.migrations.stats.started;
  await askedThenGone(vm);
  const n = handed();
  const other = spawnVmm(stack.socket, vm, 'ignore', 1);
  vmms.push(other);
  await other.line((l) => l.startsWith('verdict'));
  await until("the other process's trigger handed over", () => handed() > n);
  assert.equal(actions.migrations.stats.started, startedBefore + 2, 'its own migration');
  requestsFor(vm)[0]?.res.writeHead(202).end();
  // A's acceptance does not stand for another VM instance: its own migration asks the hook.
  await when('the second hook request', () => requestsFor(vm).length === 2);
  const [first, second] = requestsFor(vm) as [Seen, Seen];
  assert.notEqual(second.body.migrationId, first.body.migrationId);
  second.res.writeHead(202).end();
  await when('both results', () => results.filter((r) => r.vm === vm).length === 2);
  assert.deepEqual(
    results.filter((r) => r.vm === vm).map((r) => [r.outcome, r.coalesced]),
    [
      ['accepted', 0],
      ['accepted', 0],
    ],
  );
});

/** A manager with the real HTTP hook and kill manager, for sessions made by hand. */
function manager(t: { after: (fn: () => void) => void }, maxEndedKept?: number) {
  const kills = new KillManager({ enforce: false });
  const m = new MigrationManager({
    hooks: new Map([
      [
        'orchestrator',
        new HttpHook('orchestrator', {
          url: hookUrl(),
          timeoutMs: 60_000,
          retries: 0,
          backoffMs: 100,
          maxBackoffMs: 100,
          headers: {},
        }),
      ],
    ]),
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
  const close = (s: SessionInfo) => {
    m.sessionClosed(s);
    kills.sessionClosed(s, 'disconnect');
  };
  return { m, kills, open, close };
}

const decision = policyFrom(`version: 1
name: p
rules:
  - name: move
    action: { type: migrate, hook: orchestrator, scope: vm, meanwhile: none, onFailure: { type: none } }
default:
  action: { type: none }
`).decide(seaEvent(), { abi: 'merged', ras: true, emulateAbort: false }) as never;
const of = (vm: string, id: bigint, pid: number): SessionInfo => ({
  ...session(vm, id),
  peer: { pid, uid: 0, gid: 0 },
  vmmPid: pid,
});

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
  assert.equal(m.endedKept, 0, 'the next session had already opened');
  assert.equal(m.trigger(b, decision, seaEvent({ vm: { id: vm } }), 1), 'coalesced');
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

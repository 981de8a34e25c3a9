/**
 * A plugin that loses its connection and connects again at once, from the same process, for the
 * same VM is the same VM: the migration its first session asked for is its next session's. The hook
 * is not asked twice (an orchestrator answering the duplicate with 409 once had onFailure kill a VM
 * it was moving), and a refusal is not asked again. A session of the VM from another process is
 * another VM instance, migrated on its own. Real HTTP hook against a server on 127.0.0.1, the
 * in-process plugin server and action sink; the plugin of the "same process" is this test process
 * itself, the other one a child. (The manager's side of it: migration-carry.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type Actions,
  ActionsConfigSchema,
  createActions,
  type KillRecord,
  type MigrationResult,
} from '../../actions/index.js';
import type { SessionInfo } from '../../events/index.js';
import { CAP, VERDICT_FLAG } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { provider, type Stack, startStack, type TestDecision } from '../attach/stack.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';
import { type HeldRequest, heldServer } from './held-server.js';
import { spawnVmm, type VmmChild } from './vmm-child.js';

const hook = heldServer();
const { wake, when, requestsFor } = hook;

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
  await hook.listen();
  stack = await startStack(provider(() => MIGRATE));
  actions = createActions(
    ActionsConfigSchema.parse({
      hooks: { orchestrator: { type: 'http', url: hook.url(), timeoutMs: 60_000, retries: 0 } },
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
  hook.close();
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
  const [first, second] = requestsFor(vm) as [HeldRequest, HeldRequest];
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

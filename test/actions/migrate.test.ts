/**
 * Migration hooks against a real HTTP server on 127.0.0.1 and real hook processes: the payload and
 * its idempotency key, coalescing, the bounds, timeouts that never reach the verdict path, and
 * onFailure running a real kill.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type Actions,
  ActionsConfigSchema,
  createActions,
  ExecHook,
  type KillResult,
  type MigrationPayload,
  type MigrationResult,
} from '../../actions/index.js';
import type { SessionInfo } from '../../events/index.js';
import type { PolicyEvent } from '../../policies/decision.js';
import { CAP, VERDICT_FLAG } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { simulate } from '../../vmm/simulator.js';
import { INJECT, provider, type Stack, startStack, type TestDecision } from '../attach/stack.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { within } from '../helpers/wait.js';
import { heldHook } from './held-hook.js';
import { spawnVmm, type VmmChild } from './vmm-child.js';

interface Seen {
  path: string;
  key: string | undefined;
  body: MigrationPayload;
  res: ServerResponse;
}
const seen: Seen[] = [];
const arrivals: Array<() => void> = [];
let base = '';
const http = createServer((req: IncomingMessage, res) => {
  let data = '';
  req.on('data', (c: Buffer) => {
    data += c.toString();
  });
  req.on('end', () => {
    const s: Seen = {
      path: req.url ?? '',
      key: req.headers['idempotency-key'] as string,
      body: JSON.parse(data),
      res,
    };
    seen.push(s);
    if (s.path === '/refuse') res.writeHead(409).end('poisoned memory: refused');
    // '/hold' and '/hang' answer when the test says so, or never.
    for (const f of arrivals.splice(0)) f();
  });
});

const DABT_SEA = (0x24n << 26n) | (1n << 25n) | 0x10n;
/** The hanging hook's timeout: long enough for a fleet to run while all 50 hang. */
const HANG_MS = 5000;
type OnFailure = Extract<TestDecision, { action: 'migrate' }>['onFailure'];
const migrate = (hook: string, onFailure: OnFailure = { action: 'none' }) =>
  ({
    rule: `to-${hook}`,
    action: 'migrate',
    hook,
    meanwhile: { kind: 'data', via: 'kvm' },
    onFailure,
  }) as TestDecision;

function decide(e: PolicyEvent): TestDecision {
  if (e.vm.id.startsWith('hang-')) return migrate('hang');
  if (e.vm.id.startsWith('hold-')) return migrate('hold');
  if (e.vm.id.startsWith('refuse-')) return migrate('refuse', { action: 'kill', graceMs: 100 });
  return INJECT;
}

let stack: Stack;
let actions: Actions;
const results: MigrationResult[] = [];
const kills: KillResult[] = [];
const onResult: Array<() => void> = [];

before(async () => {
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  stack = await startStack(provider(decide));
  const hook = (path: string, timeoutMs: number) => ({
    type: 'http',
    url: `${base}${path}`,
    timeoutMs,
    retries: 0,
  });
  actions = createActions(
    ActionsConfigSchema.parse({
      hooks: { hang: hook('/hang', HANG_MS), hold: hook('/hold', 20_000), refuse: hook('/refuse', 5000) },
      maxHooksInFlight: 64,
      hostName: 'test-host',
    }),
    {
      migration: {
        onFinished: (m) => {
          results.push(m);
          for (const f of onResult.splice(0)) f();
        },
      },
      kill: { onFinished: (k) => kills.push(k) },
    },
  );
  stack.bus.add(actions.sink);
});

const vmms: VmmChild[] = [];
after(async () => {
  for (const vmm of vmms) await vmm.kill();
  actions.close();
  await stack.close();
  http.closeAllConnections();
  http.close();
});

/** Resolves once `pred` holds, checked again each time `list`'s callbacks are called. */
const until = (what: string, pred: () => boolean, list: Array<() => void>) =>
  within(
    what,
    new Promise<void>((resolve) => {
      const check = () => (pred() ? resolve() : list.push(check));
      check();
    }),
  );

async function plugin(vmId: string): Promise<PluginClient> {
  const c = new PluginClient({
    socket: stack.socket,
    vmId,
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    labels: { tier: 'gold' },
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  return c;
}

test('100 triggers for one VM make one request, with the poisoned pages and a stable idempotency key', async () => {
  const c = await plugin('hold-vm');
  try {
    for (let i = 0; i < 100; i++) {
      const out = await c.handleExit({
        type: 'sea',
        vcpu: 0,
        kvmFlags: 1n,
        esr: DABT_SEA,
        gva: 0n,
        gpa: BigInt(0x10000 + (i % 3) * 0x1000),
      });
      assert.equal(out.verdict.flags & VERDICT_FLAG.MIGRATING, VERDICT_FLAG.MIGRATING);
    }
    await until('the /hold request', () => seen.some((s) => s.path === '/hold'), arrivals);
    await new Promise((r) => setImmediate(r)); // the last verdict's action turn
    const held = seen.filter((s) => s.path === '/hold');
    assert.equal(held.length, 1);
    const req = held[0] as Seen;
    assert.equal(req.key, req.body.migrationId);
    assert.equal(req.body.vm.id, 'hold-vm');
    assert.deepEqual(req.body.vm.labels, { tier: 'gold' });
    assert.equal(req.body.host, 'test-host');
    assert.equal(req.body.rule, 'to-hold');
    assert.equal(req.body.policyVersion, 'test-policy');
    assert.deepEqual(req.body.poisonedPages.slice(0, 1), ['0x10000']);
    const done = until('the result of hold-vm', () => results.some((r) => r.vm === 'hold-vm'), onResult);
    req.res.writeHead(202).end();
    await done;
    const r = results.find((x) => x.vm === 'hold-vm') as MigrationResult;
    assert.equal(r.outcome, 'accepted');
    assert.equal(r.coalesced, 99);
    assert.equal(r.onFailure, null);
    assert.equal(seen.filter((s) => s.path === '/hold').length, 1);
  } finally {
    await c.close();
  }
});

test('50 hanging hooks do not hold up verdicts, and each times out as configured', async (t) => {
  // How much they cost a verdict is for benchmarks; here: every verdict comes from the daemon
  // while all 50 hang.
  const sim = { socket: stack.socket, vms: 4, vcpus: 2, events: 3000, deadlineMs: PATIENT_DEADLINE_MS };
  const baseline = await simulate({ ...sim, vmPrefix: 'calm-a' });
  const arrived = until(
    '50 /hang requests',
    () => seen.filter((s) => s.path === '/hang').length === 50,
    arrivals,
  );
  await simulate({ ...sim, vms: 50, vcpus: 1, events: 50, vmPrefix: 'hang-' });
  await arrived;
  assert.equal(actions.migrations.stats.running, 50);
  // Stopped early if the hooks time out first: every event it sends is sent while they hang.
  const timedOut = until('a hang- result', () => results.some((r) => r.vm.startsWith('hang-')), onResult);
  timedOut.catch(() => {}); // only a stop signal; the results are awaited below
  const during = await simulate({ ...sim, vmPrefix: 'calm-b', until: timedOut });
  assert.ok(during.sent > 0);
  const p50 = (s: typeof baseline) => s.latencyUs.p50 as number;
  t.diagnostic(`verdict p50: ${p50(baseline)} µs without hooks, ${p50(during)} µs with 50 hooks hanging`);
  assert.equal(during.answered, during.sent, 'every verdict came from the daemon');
  await until(
    '50 hang- results',
    () => results.filter((r) => r.vm.startsWith('hang-')).length === 50,
    onResult,
  );
  for (const r of results.filter((x) => x.vm.startsWith('hang-'))) {
    assert.equal(r.outcome, 'timed_out');
    assert.ok(
      r.finishedAtMs - r.queuedAtMs >= HANG_MS - 100,
      `timed out after ${r.finishedAtMs - r.queuedAtMs} ms`,
    );
  }
});

test("a refused migration (409) runs the rule's onFailure: the VMM is killed", async () => {
  const vmm = spawnVmm(stack.socket, 'refuse-vm', 'ignore');
  vmms.push(vmm);
  const exit = await vmm.exited();
  assert.equal(exit.signal, 'SIGKILL');
  const r = results.find((x) => x.vm === 'refuse-vm') as MigrationResult;
  assert.equal(r.outcome, 'refused');
  assert.equal(r.onFailure, 'kill');
  assert.match(r.detail ?? '', /409/);
  const k = kills.find((x) => x.vm === 'refuse-vm') as KillResult;
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(k.reason, 'migration_refused');
  assert.equal(k.rule, 'to-refuse');
});

test('exec hooks: payload on stdin, exit 0 accepted, exit 3 refused, timeout SIGKILLs the child', async () => {
  const payload = {
    migrationId: 'm-1',
    vm: { id: 'v', labels: {} },
    poisonedPages: ['0x1000'],
  } as unknown as MigrationPayload;
  const echo = new ExecHook('echo', {
    argv: [
      process.execPath,
      '-e',
      "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>process.exit(JSON.parse(d).poisonedPages[0]==='0x1000'?0:1))",
    ],
    timeoutMs: 10_000,
    env: {},
  });
  assert.equal((await echo.run(payload)).outcome, 'accepted');
  const refuse = new ExecHook('refuse', {
    argv: [process.execPath, '-e', 'process.exit(3)'],
    timeoutMs: 10_000,
    env: {},
  });
  assert.equal((await refuse.run(payload)).outcome, 'refused');
  const fail = new ExecHook('fail', {
    argv: [process.execPath, '-e', 'process.exit(1)'],
    timeoutMs: 10_000,
    env: {},
  });
  assert.equal((await fail.run(payload)).outcome, 'failed');
  const slow = new ExecHook('slow', {
    argv: [process.execPath, '-e', 'setInterval(()=>{},1e6)'],
    timeoutMs: 300,
    env: {},
  });
  const t0 = Date.now();
  const r = await slow.run(payload);
  assert.equal(r.outcome, 'timed_out');
  assert.ok(Date.now() - t0 >= 300);
  const missing = new ExecHook('missing', { argv: ['/nonexistent/hook'], timeoutMs: 1000, env: {} });
  assert.equal((await missing.run(payload)).outcome, 'failed');
});

/** The event a unit test of the migration manager triggers with: only its VM reaches the payload. */
const seaEvent = (vm: string) =>
  ({ kind: 'sea', vm: { id: vm, labels: {} }, vcpu: 0, gpa: null, severity: 'uer', timeMs: 0 }) as never;

test('a full hook queue is shared between plugin processes: one with many sessions cannot lock others out', async () => {
  const { KillManager, MigrationManager, PoisonedPages } = await import('../../actions/index.js');
  const { hook, release, ran } = heldHook('slow');
  const kills = new KillManager();
  const killed: string[] = [];
  const request = kills.request.bind(kills);
  kills.request = (r) => {
    killed.push(r.session.vm.id);
    return request(r);
  };
  const dropped: string[] = [];
  const finished: MigrationResult[] = [];
  const m = new MigrationManager({
    hooks: new Map([['slow', hook]]),
    kills,
    pages: new PoisonedPages({ perVm: 4, vms: 4 }),
    host: 'h',
    maxInFlight: 1,
    maxQueued: 4,
    onDropped: (vm) => dropped.push(vm),
    onFinished: (r) => finished.push(r),
  });
  let nextId = 1n;
  const session = (vm: string, pid: number): SessionInfo =>
    ({ id: nextId++, vm: { id: vm, labels: {} }, vmmPid: pid, peer: { pid, uid: 0, gid: 0 } }) as never;
  // onFailure kill: a migration pushed out of the queue must not run it (its hook never ran).
  const d = { ...migrate('slow', { action: 'kill', graceMs: 100 }), policyVersion: 'p' } as never;
  const e = seaEvent('x');
  const many = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'].map((vm) => session(vm, 100));
  const [o1, o2, o3] = ['o1', 'o2', 'o3'].map((vm) => session(vm, 200)) as [
    SessionInfo,
    SessionInfo,
    SessionInfo,
  ];
  for (const s of [...many, o1, o2, o3]) m.sessionOpened(s);
  assert.deepEqual(
    many.map((s) => m.trigger(s, d, e)),
    ['started', 'queued', 'queued', 'queued', 'queued', 'dropped'],
    'one process alone fills the queue; past it its own trigger is dropped, as before',
  );
  // Another process's VMs take the queue's slots from the process holding the most, newest first,
  // until their shares differ by less than two.
  assert.equal(m.trigger(o1, d, e), 'queued');
  assert.equal(m.trigger(o2, d, e), 'queued');
  assert.equal(m.trigger(o3, d, e), 'dropped', 'shares of 2 and 2: nothing is taken');
  assert.deepEqual(dropped, ['m6', 'o3']);
  assert.deepEqual(
    finished.map((r) => [r.vm, r.outcome, r.attempts, r.onFailure]),
    [
      ['m5', 'dropped', 0, null],
      ['m4', 'dropped', 0, null],
    ],
  );
  assert.equal(m.stats.dropped, 4);
  assert.equal(m.stats.queued, 4);
  for (let i = 0; i < 5; i++) {
    release.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(ran, ['m1', 'm2', 'm3', 'o1', 'o2'], 'the queue kept its order');
  assert.equal(m.pending, 0);
  assert.deepEqual(killed, [], 'no onFailure ran');
  kills.close();
});

test('past maxInFlight migrations queue, past maxQueued they are dropped and counted', async () => {
  const { KillManager, MigrationManager, PoisonedPages } = await import('../../actions/index.js');
  const { hook, release } = heldHook('slow');
  const dropped: string[] = [];
  const m = new MigrationManager({
    hooks: new Map([['slow', hook]]),
    kills: new KillManager(),
    pages: new PoisonedPages({ perVm: 4, vms: 4 }),
    host: 'h',
    maxInFlight: 1,
    maxQueued: 1,
    onDropped: (vm) => dropped.push(vm),
  });
  const session = (id: string) =>
    ({ id: BigInt(id.length), vm: { id, labels: {} }, vmmPid: 1, peer: { pid: 1 } }) as never;
  const d = { ...migrate('slow'), policyVersion: 'p' } as never;
  const e = seaEvent('a');
  for (const vm of ['a', 'bb', 'ccc']) m.sessionOpened(session(vm));
  assert.equal(m.trigger(session('a'), d, e), 'started');
  assert.equal(m.trigger(session('bb'), d, e), 'queued');
  assert.equal(m.trigger(session('ccc'), d, e), 'dropped');
  assert.equal(m.trigger(session('a'), d, e), 'coalesced');
  assert.deepEqual(dropped, ['ccc']);
  assert.equal(m.stats.dropped, 1);
  release.shift()?.();
  await new Promise((r) => setImmediate(r));
  assert.equal(m.stats.running, 1, 'the queued one started when a slot freed');
  release.shift()?.();
  await new Promise((r) => setImmediate(r));
  assert.equal(m.pending, 0);
  // Accepted: the VM is being moved; its session's later errors are not re-requested …
  assert.equal(m.trigger(session('a'), d, e), 'accepted-already');
  assert.equal(m.stats.started, 2);
  // … until that session ends: the VM's next session (here or elsewhere) starts afresh.
  m.sessionClosed(session('a'));
  assert.equal(m.trigger(session('a'), d, e), 'started');
  release.shift()?.();
});

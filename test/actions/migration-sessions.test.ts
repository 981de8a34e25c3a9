/**
 * A migration belongs to the plugin session that asked for it. The VM's next session (the VM
 * restarted here while a hook ran) gets a migration of its own, whose onFailure reaches that
 * session's VMM; what a hook answers for a session that has already ended is not remembered; and
 * closing the manager ends running hooks, reported before the record closes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ExecHook,
  type HookResult,
  type HookRunner,
  HttpHook,
  KillManager,
  type KillRecord,
  MigrationManager,
  type MigrationPayload,
  type MigrationResult,
  PoisonedPages,
} from '../../actions/index.js';
import { until, within } from '../helpers/wait.js';
import { policyFrom, seaEvent } from '../policies/fixtures.js';
import { session } from '../store/records.js';

const d = policyFrom(`version: 1
name: p
rules:
  - name: move
    action: { type: migrate, hook: h, scope: vm, meanwhile: none, onFailure: { type: kill, grace: 1s } }
default:
  action: { type: none }
`).decide(seaEvent(), { abi: 'merged', ras: true, emulateAbort: false }) as never;
const withHook = (hook: string) => ({ ...(d as object), hook }) as never;
const REFUSED: HookResult = { outcome: 'refused', detail: 'poisoned memory', attempts: 1 };

/** A hook that answers when the test says; `asked` resolves once it has been run `n` times. */
function heldHook() {
  const calls: Array<{ payload: MigrationPayload; answer: (r: HookResult) => void }> = [];
  const waiting: Array<() => void> = [];
  const hook: HookRunner = {
    name: 'h',
    kind: 'exec',
    run: (payload) =>
      new Promise((answer) => {
        calls.push({ payload, answer });
        for (const w of waiting.splice(0)) w();
      }),
  };
  const asked = (n: number) =>
    within(
      `${n} hook runs`,
      new Promise<void>((resolve) => {
        const check = () => (calls.length >= n ? resolve() : waiting.push(check));
        check();
      }),
    );
  return { hook, calls, asked };
}

function manager(
  t: { after: (fn: () => void) => void },
  hooks: ReadonlyMap<string, HookRunner>,
  maxInFlight = 4,
) {
  const killed: KillRecord[] = [];
  const kills = new KillManager({ enforce: false, onStarted: (k) => killed.push(k) });
  const finished: MigrationResult[] = [];
  const waiting: Array<() => void> = [];
  const m = new MigrationManager({
    hooks,
    kills,
    pages: new PoisonedPages({ perVm: 8, vms: 8 }),
    host: 'h',
    maxInFlight,
    maxQueued: 4,
    onFinished: (r) => {
      finished.push(r);
      for (const w of waiting.splice(0)) w();
    },
  });
  t.after(() => {
    m.close();
    kills.close();
  });
  const settled = (n: number) =>
    within(
      `${n} migration results`,
      new Promise<void>((resolve) => {
        const check = () => (finished.length >= n ? resolve() : waiting.push(check));
        check();
      }),
    );
  return { m, kills, killed, finished, settled };
}

test("the VM's next session is migrated on its own, and its onFailure kills its own VMM", async (t) => {
  const { hook, calls, asked } = heldHook();
  const { m, kills, killed, finished, settled } = manager(t, new Map([['h', hook]]));
  const a = { ...session('vm-m', 1n), peer: { pid: 1111, uid: 0, gid: 0 }, vmmPid: 1111 };
  const b = { ...session('vm-m', 2n), peer: { pid: 2222, uid: 0, gid: 0 }, vmmPid: 2222 };
  const ev = seaEvent({ vm: { id: 'vm-m' } });
  kills.sessionOpened(a, null);
  m.sessionOpened(a);
  assert.equal(m.trigger(a, d, ev, 1), 'started');
  // A's VMM goes; the VM comes back in session B while A's hook still runs.
  kills.sessionClosed(a, 'disconnect');
  m.sessionClosed(a);
  kills.sessionOpened(b, null);
  m.sessionOpened(b);
  // B's error is B's migration: it waits for A's hook (one hook per VM at a time) …
  assert.equal(m.trigger(b, d, ev, 7), 'queued');
  // … and B's later errors fold into it.
  assert.equal(m.trigger(b, d, ev, 8), 'coalesced');
  assert.equal(m.pending, 2);
  assert.equal(calls.length, 1);
  calls[0]?.answer(REFUSED);
  await settled(1);
  await asked(2);
  assert.notEqual(calls[1]?.payload.migrationId, calls[0]?.payload.migrationId);
  calls[1]?.answer(REFUSED);
  await settled(2);
  assert.deepEqual(
    finished.map((r) => [r.sessionId, r.seq, r.coalesced, r.outcome, r.onFailure]),
    [
      [1n, 1, 0, 'refused', 'kill'],
      [2n, 7, 1, 'refused', 'kill'],
    ],
  );
  // Each refusal's onFailure reached the VMM of the session it was asked for.
  assert.deepEqual(
    killed.map((k) => [k.sessionId, k.peerPid, k.reason]),
    [
      [1n, 1111, 'migration_refused'],
      [2n, 2222, 'migration_refused'],
    ],
  );
  assert.equal(m.pending, 0);
});

test('answers for sessions that ended before their hook answered are not remembered', async (t) => {
  const N = 2000;
  const { hook, calls, asked } = heldHook();
  const { m, settled } = manager(t, new Map([['h', hook]]), 2 * N);
  const sessions = Array.from({ length: N }, (_, i) => session(`vm-${i}`, BigInt(i + 1)));
  for (const [i, s] of sessions.entries()) {
    m.sessionOpened(s);
    assert.equal(m.trigger(s, d, seaEvent({ vm: { id: s.vm.id } }), i), 'started');
    m.sessionClosed(s);
  }
  await asked(N);
  // Half accepted, half refused, every one after its session ended.
  for (const [i, c] of calls.entries())
    c.answer(i % 2 ? REFUSED : { outcome: 'accepted', detail: null, attempts: 1 });
  await settled(N);
  // A late error of an ended session (the next turn's actions) shows what is still remembered.
  let remembered = 0;
  for (const s of sessions) {
    const r = m.trigger(s, d, seaEvent({ vm: { id: s.vm.id } }), 0);
    if (r === 'accepted-already' || r === 'refused-already') remembered++;
  }
  assert.equal(remembered, 0);
});

test('closing ends running exec and HTTP hooks at once, each reported failed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-close-'));
  const pidFile = join(dir, 'hook.pid');
  let hookPid: number | undefined;
  const requests: IncomingMessage[] = [];
  const arrived: Array<() => void> = [];
  // Never answers: the request ends only when the client aborts it.
  const server = createServer((req) => {
    requests.push(req);
    for (const f of arrived.splice(0)) f();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
    if (hookPid !== undefined) {
      try {
        process.kill(-hookPid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const exec = new ExecHook('exec', {
    argv: ['/bin/sh', '-c', `echo $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}; exec sleep 120`],
    timeoutMs: 600_000,
    env: {},
  });
  const http = new HttpHook('http', {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/migrate`,
    timeoutMs: 600_000,
    retries: 3,
    backoffMs: 1000,
    maxBackoffMs: 1000,
    headers: {},
  });
  const { m, finished } = manager(
    t,
    new Map<string, HookRunner>([
      ['exec', exec],
      ['http', http],
    ]),
    2,
  );
  const [e, h, q] = ['vm-exec', 'vm-http', 'vm-queued'].map((vm, i) => session(vm, BigInt(i + 1))) as [
    ReturnType<typeof session>,
    ReturnType<typeof session>,
    ReturnType<typeof session>,
  ];
  for (const s of [e, h, q]) m.sessionOpened(s);
  assert.equal(m.trigger(e, withHook('exec'), seaEvent({ vm: { id: e.vm.id } }), 1), 'started');
  assert.equal(m.trigger(h, withHook('http'), seaEvent({ vm: { id: h.vm.id } }), 1), 'started');
  assert.equal(m.trigger(q, withHook('exec'), seaEvent({ vm: { id: q.vm.id } }), 1), 'queued');
  hookPid = await until("the exec hook's pid file", () => {
    try {
      return Number(readFileSync(pidFile, 'utf8'));
    } catch {
      return undefined;
    }
  });
  await within(
    'the HTTP hook request',
    new Promise<void>((resolve) => (requests.length > 0 ? resolve() : arrived.push(resolve))),
  );
  const req = requests[0] as IncomingMessage;
  const aborted = within(
    'the HTTP request aborted',
    new Promise<void>((resolve) => req.socket.once('close', () => resolve())),
  );
  m.close();
  // Reported within close(): the daemon closes its store right after.
  assert.deepEqual(finished.map((r) => [r.vm, r.outcome, r.detail]).sort(), [
    ['vm-exec', 'failed', 'daemon stopping'],
    ['vm-http', 'failed', 'daemon stopping'],
    ['vm-queued', 'failed', 'daemon stopping'],
  ]);
  assert.equal(m.pending, 0);
  await aborted;
  const pid = hookPid;
  await until(`the exec hook's process group ${pid} gone`, () => {
    try {
      process.kill(-pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  });
});

/**
 * Migrations asked for once, not on every event: a refusal stands for the VM until its plugin
 * session or the policy version changes (one VM's eight errors once ran the hook eight times), and
 * a host-scope rule evacuates every VM with a live session, and asks again only once something
 * changed. Real exec hooks: each run appends a line to a file, so the count is the hook's own
 * (the fold's test holds its hooks' answers itself).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ExecHook,
  KillManager,
  MigrationManager,
  type MigrationResult,
  PoisonedPages,
} from '../../actions/index.js';
import { policyFrom, seaEvent } from '../policies/fixtures.js';
import { session } from '../store/records.js';
import { heldHook } from './held-hook.js';

function stack(t: { after: (fn: () => void) => void }, exit: number) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-mig-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'runs');
  writeFileSync(log, '');
  const script = join(dir, 'hook.sh');
  // The payload's VM id and scope, one line per run.
  // One line per run (written with one write, as hooks run concurrently): the payload's VM and scope.
  writeFileSync(
    script,
    `#!/bin/sh\nline=$(tr -d '\\n' | sed -e 's/.*"vm":{"id":"\\([^"]*\\)".*"scope":"\\([a-z]*\\)".*/\\1 \\2/')\necho "$line" >> ${log}\nexit ${exit}\n`,
  );
  chmodSync(script, 0o755);
  const finished: MigrationResult[] = [];
  let wake: () => void = () => {};
  const m = new MigrationManager({
    hooks: new Map([['evacuate', new ExecHook('evacuate', { argv: [script], timeoutMs: 10_000, env: {} })]]),
    kills: new KillManager({ enforce: false }),
    pages: new PoisonedPages({ perVm: 8, vms: 8 }),
    host: 'hv-test',
    maxInFlight: 4,
    maxQueued: 16,
    onFinished: (r) => {
      finished.push(r);
      wake();
    },
  });
  const settled = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (finished.length >= n ? resolve() : undefined);
      wake = check;
      check();
    });
  const runs = () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  return { m, finished, settled, runs };
}

const decisionOf = (yaml: string) =>
  policyFrom(yaml).decide(seaEvent(), { abi: 'merged', ras: true, emulateAbort: false });
const POLICY = (scope: string, name = 'p') => `version: 1
name: ${name}
rules:
  - name: move
    action: { type: migrate, hook: evacuate, scope: ${scope}, meanwhile: none, onFailure: { type: none } }
default:
  action: { type: none }
`;

test('a refused migration is not asked again for that VM until its session or the policy changes', async (t) => {
  const { m, settled, runs, finished } = stack(t, 3);
  const d = decisionOf(POLICY('vm')) as never;
  const s = session('vm-r', 1n);
  m.sessionOpened(s);
  assert.equal(m.trigger(s, d, seaEvent({ vm: { id: 'vm-r' } }), 1), 'started');
  await settled(1);
  assert.equal(finished[0]?.outcome, 'refused');
  for (let seq = 2; seq <= 8; seq++)
    assert.equal(m.trigger(s, d, seaEvent({ vm: { id: 'vm-r' } }), seq), 'refused-already');
  assert.equal(runs().length, 1, 'eight errors, one hook run');
  assert.equal(m.stats.refusedAlready, 7);
  // A new policy version may decide differently: asked once more.
  const reloaded = decisionOf(POLICY('vm', 'p2')) as never;
  assert.equal(m.trigger(s, reloaded, seaEvent({ vm: { id: 'vm-r' } }), 9), 'started');
  await settled(2);
  assert.equal(m.trigger(s, reloaded, seaEvent({ vm: { id: 'vm-r' } }), 10), 'refused-already');
  // The VM's next session (it restarted) is asked for afresh.
  m.sessionClosed(s);
  const next = session('vm-r', 2n);
  m.sessionOpened(next);
  assert.equal(m.trigger(next, reloaded, seaEvent({ vm: { id: 'vm-r' } }), 1), 'started');
  await settled(3);
  assert.equal(runs().length, 3);
});

test('scope: host evacuates every VM with a live session, each once', async (t) => {
  const { m, settled, runs } = stack(t, 0);
  const d = decisionOf(POLICY('host')) as never;
  const sessions = ['a', 'b', 'c'].map((vm, i) => session(`host-${vm}`, BigInt(i + 1)));
  for (const s of sessions) m.sessionOpened(s);
  const gone = session('host-gone', 9n);
  m.sessionOpened(gone);
  m.sessionClosed(gone);
  const from = sessions[1] as (typeof sessions)[number];
  assert.equal(m.evacuate(d, seaEvent({ vm: { id: 'host-b' } }), from, 5), 3);
  await settled(3);
  assert.deepEqual(runs().sort(), ['host-a host', 'host-b host', 'host-c host']);
  // Accepted: later errors anywhere on the host ask for nothing more.
  assert.equal(m.evacuate(d, seaEvent({ vm: { id: 'host-a' } }), sessions[0] as never, 6), 0);
  assert.equal(runs().length, 3);
});

test('a host-scope rule asking again before anything changed is folded: no pass, no drops reported again', async () => {
  const { hook, release } = heldHook('evacuate');
  const dropped: string[] = [];
  const m = new MigrationManager({
    hooks: new Map([['evacuate', hook]]),
    kills: new KillManager({ enforce: false }),
    pages: new PoisonedPages({ perVm: 8, vms: 8 }),
    host: 'hv-test',
    maxInFlight: 1,
    maxQueued: 2,
    onDropped: (vm) => dropped.push(vm),
  });
  const d = decisionOf(POLICY('host')) as never;
  const sessions = Array.from({ length: 10 }, (_, i) => session(`fold-${i}`, BigInt(i + 1)));
  for (const s of sessions) m.sessionOpened(s);
  const e = seaEvent({ vm: { id: 'fold-0' } });
  assert.equal(m.evacuate(d, e, sessions[0] as never, 1), 3, 'one running, two queued');
  assert.equal(dropped.length, 7);
  const coalesced = m.stats.coalesced;
  // A storm's later errors, of any VM, with nothing changed: no pass over the sessions.
  for (let seq = 2; seq <= 101; seq++) assert.equal(m.evacuate(d, e, sessions[seq % 10] as never, seq), 0);
  assert.equal(dropped.length, 7, 'no drop reported again');
  assert.equal(m.stats.coalesced, coalesced, 'no VM asked again');
  assert.equal(m.stats.evacuationsFolded, 100);
  // Another rule is a pass of its own.
  const other = decisionOf(POLICY('host', 'p2')) as never;
  m.evacuate(other, e, sessions[0] as never, 102);
  assert.equal(dropped.length, 14, 'the other rule asked for every VM not in the queue');
  // A hook answers: the queue has room, and the next trigger asks again.
  release.shift()?.();
  await new Promise((r) => setImmediate(r));
  assert.equal(m.evacuate(d, e, sessions[0] as never, 103), 1, 'the freed slot taken');
  assert.equal(m.stats.evacuationsFolded, 100);
  // A VM that connects is asked for at the next trigger.
  const late = session('fold-late', 99n);
  m.sessionOpened(late);
  const before = dropped.length;
  assert.equal(m.evacuate(d, e, sessions[0] as never, 104), 0);
  assert.ok(dropped.includes('fold-late') && dropped.length > before, 'the new VM was asked for');
  m.close();
});

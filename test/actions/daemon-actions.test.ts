/**
 * The action layer inside the real daemon process (`seawall daemon`): kill enforcement on a real
 * VMM child, a migration hook to a real HTTP server, and the attach socket's fd hygiene measured
 * in /proc/<daemon pid>/fd. These need the composition root's wiring (the `actions:` and `attach:`
 * config sections).
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { controlRequest } from '../../control/index.js';
import { CAP } from '../../protocol/index.js';
import { AttachClient, StandInVcpus } from '../../vmm/attach-client.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import {
  metricSum,
  PATIENT_DEADLINE_MS,
  type RunningDaemon,
  removeDir,
  scrape,
  startDaemon,
} from '../helpers/daemon.js';
import { until, within } from '../helpers/wait.js';
import { spawnVmm, type VmmChild } from './vmm-child.js';

const POLICY = `version: 1
name: actions-daemon-test
hooks: [orch]
rules:
  - name: gold-migrate
    match: { labels: { tier: gold }, kind: [sea] }
    action: { type: migrate, hook: orch, meanwhile: { abort: data }, onFailure: { type: none } }
  - name: doomed-kill
    match: { labels: { tier: doomed } }
    action: { type: kill, grace: 300ms }
default:
  action: { type: inject, abort: data }
`;

let daemon: RunningDaemon;
const bodies: Array<{ key: string; body: { vm: { id: string }; poisonedPages: string[] } }> = [];
const http = createServer((req, res) => {
  let d = '';
  req.on('data', (c: Buffer) => {
    d += c.toString();
  });
  req.on('end', () => {
    bodies.push({ key: req.headers['idempotency-key'] as string, body: JSON.parse(d) });
    res.writeHead(200).end();
  });
});

before(async () => {
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'seawall-da-'));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const port = (http.address() as AddressInfo).port;
  writeFileSync(
    join(dir, 'config.yaml'),
    `actions:\n  hooks:\n    orch: { type: http, url: "http://127.0.0.1:${port}/migrate", timeoutMs: 2000, retries: 0 }\n` +
      `attach:\n  socket: ${join(dir, 'attach.sock')}\n  allowStandIns: true\n`,
  );
  daemon = await startDaemon({
    dir,
    args: ['--config', join(dir, 'config.yaml'), '--policy', join(dir, 'policy.yaml')],
  });
});

const vmms: VmmChild[] = [];
after(async () => {
  for (const vmm of vmms) await vmm.kill();
  if (daemon) {
    await daemon.kill();
    removeDir(daemon.dir);
  }
  http.closeAllConnections();
  http.close();
});

test('the daemon SIGKILLs a VMM that ignores its KILL verdict after the grace', async () => {
  const vmm = spawnVmm(daemon.socket, 'doomed-1', 'ignore', 1);
  vmms.push(vmm);
  await vmm.line((l) => l.startsWith('kill '));
  const exit = await vmm.exited();
  assert.equal(exit.signal, 'SIGKILL');
  // The record: the event with the rule that decided it, and the kill with its outcome (written
  // when the kill finishes, after the VMM's death that this test saw first).
  const db = new Database(join(daemon.stateDir, 'events.sqlite'), { readonly: true });
  try {
    type Kill = { rule: string; outcome: string } | undefined;
    const select = db.prepare("SELECT rule, outcome FROM actions WHERE vm = 'doomed-1' AND action = 'kill'");
    let kill: Kill;
    await until(
      'the kill of doomed-1 recorded as sigkilled',
      () => {
        kill = select.get() as Kill;
        return kill?.outcome === 'sigkilled';
      },
      { everyMs: 20, state: () => `recorded: ${JSON.stringify(kill)}` },
    );
    assert.deepEqual(kill, { rule: 'doomed-kill', outcome: 'sigkilled' });
  } finally {
    db.close();
  }
  const events = await controlRequest(daemon.controlSocket, 'events', { vm: 'doomed-1' });
  assert.ok(events.length >= 1);
  for (const e of events as { rule: string; action: string }[]) {
    assert.equal(e.rule, 'doomed-kill');
    assert.equal(e.action, 'kill');
  }
});

test('a migrate decision reaches the HTTP hook with the poisoned page', async () => {
  const c = new PluginClient({
    socket: daemon.socket,
    vmId: 'gold-1',
    labels: { tier: 'gold' },
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  try {
    await c.handleExit({
      type: 'sea',
      vcpu: 0,
      kvmFlags: 1n,
      esr: (0x24n << 26n) | (1n << 25n) | 0x10n,
      gva: 0n,
      gpa: 0x5000n,
    });
    await until("gold-1's migration request at the hook", () =>
      bodies.some((b) => b.body.vm.id === 'gold-1'),
    );
    const b = bodies.find((x) => x.body.vm.id === 'gold-1');
    assert.deepEqual(b?.body.poisonedPages, ['0x5000']);
    assert.ok(b?.key);
  } finally {
    await c.close();
  }
});

test("1,000 attach/detach cycles leave the daemon's open fd count where it started", async () => {
  const attachSock = join(daemon.dir, 'attach.sock');
  const c = new PluginClient({
    socket: daemon.socket,
    vmId: 'cycler',
    vcpuCount: 2,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  const vcpus = new StandInVcpus(2);
  const fds = () => readdirSync(`/proc/${daemon?.pid}/fd`).length;
  try {
    const sid = c.sessionId as bigint;
    // The daemon releases a closed connection when it sees the close, so counts are waited for.
    // A connection of an earlier test still closing can only make a count higher: a leak of one
    // fd per cycle still shows as a thousand.
    const back = (what: string, to: number) =>
      until(`the daemon's fd count back at ${to} after ${what}`, () => fds() <= to, {
        state: () => `${fds()} open`,
      });
    const before = fds();
    // A warm-up cycle first, for whatever the first attachment opens once and keeps.
    const warm = AttachClient.connect(attachSock);
    await warm.attach(sid, 0, vcpus.fds[0] as number);
    await warm.detach(sid, 0);
    warm.close();
    await back('the warm-up cycle', before);
    const start = fds();
    let cycles = 0;
    await within(
      '1000 attach/detach cycles',
      (async () => {
        for (; cycles < 1000; cycles++) {
          const ac = AttachClient.connect(attachSock);
          await ac.attach(sid, cycles % 2, vcpus.fds[cycles % 2] as number);
          await ac.detach(sid, cycles % 2);
          ac.close();
        }
      })(),
      { state: () => `${cycles} done` },
    );
    await back('1000 cycles', start);
  } finally {
    vcpus.close();
    await c.close();
  }
});

test('an attached vCPU: the verdict follows the kernel page, and a lying plugin is counted', async () => {
  const c = new PluginClient({
    socket: daemon.socket,
    vmId: 'liar',
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  const vcpus = new StandInVcpus(1);
  const ac = AttachClient.connect(join(daemon.dir, 'attach.sock'));
  try {
    await vcpus.attachAll(ac, c.sessionId as bigint);
    // The kernel's page says: SEA, FnV set, GPA 0x7000 valid. The plugin claims another ESR and GPA.
    const pageEsr = (0x24n << 26n) | (1n << 25n) | (1n << 10n) | 0x10n;
    vcpus.write(0, {
      reason: 'arm-sea',
      flags: 1n,
      esr: pageEsr,
      gva: 0n,
      gvaValid: false,
      gpa: 0x7000n,
      gpaValid: true,
    });
    const out = await c.handleExit({
      type: 'sea',
      vcpu: 0,
      kvmFlags: 1n,
      esr: 0x92000010n,
      gva: 0x1234n,
      gpa: 0x9000n,
    });
    assert.equal(out.source, 'daemon');
    const text = await scrape(daemon.metricsUrl as string);
    assert.equal(
      metricSum(text, 'seawall_kernel_mismatches_total', (l) => l.includes('field="esr"')),
      1,
    );
    assert.equal(
      metricSum(text, 'seawall_kernel_mismatches_total', (l) => l.includes('field="gpa"')),
      1,
    );
    // The poisoned page on record is the kernel's, not the plugin's claim.
    const poison = await controlRequest(daemon.controlSocket, 'poison', { vm: 'liar' });
    assert.deepEqual(
      (poison as { gpa: string }[]).map((p) => p.gpa),
      ['0x0000000000007000'],
    );
  } finally {
    ac.close();
    vcpus.close();
    await c.close();
  }
});

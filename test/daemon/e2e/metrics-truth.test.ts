/**
 * The numbers an operator reads are true: after a fleet hits a few pages again and again,
 * `seawall_poisoned_pages{vm}` equals the VM's distinct pages (as `seawall poison` lists them); a
 * downgrade is labelled with the short codes docs/metrics.md promises, and its journal entry
 * carries the same codes; while the store cannot commit, its pending and held gauges add up to
 * every answered event not yet stored; the alert rules link absolute runbook URLs, under any base
 * asked for.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { BUILTIN_SHA256 } from '../../../daemon/policy-loader.js';
import { STORE_FILE } from '../../../store/index.js';
import { simulate } from '../../../vmm/simulator.js';
import { metricSum, removeDir, scrape, startDaemon } from '../../helpers/daemon.js';
import { requireTool } from '../../helpers/tools.js';
import { until } from '../../helpers/wait.js';
import { cliJson, runCli, runTool } from './run-cli.js';

const POLICY = `version: 1
name: iabt-wanted
rules:
  - name: wants-iabt
    match: { kind: sea }
    action: { type: inject, abort: instruction, set: uer }
    onUnsupported: downgrade
default:
  action: { type: none }
`;
const DOCS = new URL('../../../docs/', import.meta.url).pathname;

test('poisoned-pages gauge, downgrade labels and journal fields are the documented truths', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-truth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const d = await startDaemon({ args: ['--policy', join(dir, 'policy.yaml'), '--log-events', 'each'] });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const summary = await simulate({
    socket: d.socket,
    vms: 2,
    vcpus: 2,
    events: 400,
    pages: 3,
    vmPrefix: 'truth',
  });
  assert.equal(summary.answered, 400);
  const text = await scrape(d.metricsUrl as string);
  for (const vm of ['truth-0', 'truth-1']) {
    const pages = await cliJson<{ gpa: string }[]>(d.controlSocket, ['poison', '--vm', vm]);
    assert.equal(pages.length, 3, `${vm} hit its three pages`);
    assert.equal(
      metricSum(text, 'seawall_poisoned_pages', (l) => l.includes(`vm="${vm}"`)),
      3,
      `seawall_poisoned_pages{vm="${vm}"}`,
    );
  }
  // The simulator's host has the merged ABI: an instruction abort with an ESR becomes a data abort.
  const downgrades = text.split('\n').filter((l) => l.startsWith('seawall_injection_downgrades_total{'));
  assert.deepEqual(downgrades, [
    'seawall_injection_downgrades_total{from="iabt_esr",to="dabt",rule="wants-iabt"} 400',
  ]);
  const metricsDoc = readFileSync(join(DOCS, 'metrics.md'), 'utf8');
  for (const code of ['iabt_esr', 'dabt', 'merged_abi_no_iabt'])
    assert.ok(metricsDoc.includes(`\`${code}\``), `docs/metrics.md documents ${code}`);
  const entry = d.output.find((l) => l.includes('MESSAGE_ID=6fc68697374341509aa94154113b8061'));
  assert.ok(entry, 'an INJECTION_DOWNGRADED entry was logged');
  assert.match(entry, / SEAWALL_REASON=merged_abi_no_iabt( |$)/);
  assert.match(entry, / SEAWALL_OUTCOME=dabt( |$)/);
  const memory = d.output.find((l) => l.startsWith('memory error (sea)'));
  assert.match(memory ?? '', / SEAWALL_SEVERITY=uer /);
  assert.match(memory ?? '', / SEAWALL_OUTCOME=verdict_sent /);
});

test('while the store cannot commit, every answered event is pending or held, and both gauges say so', async (t) => {
  const d = await startDaemon();
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  // One event first, stored: its rows start the writer thread. Until then session rows are
  // committed on the event loop, and under the lock the first HELLO's would begin the fault
  // before any event was written ahead (on a busy machine the simulated VMs' events come later).
  await simulate({ socket: d.socket, vms: 1, vcpus: 1, events: 1, vmPrefix: 'warm' });
  await until('the first event to be stored', async () => {
    const stored = await cliJson<unknown[]>(d.controlSocket, ['events', '--limit', '10']);
    return stored.length === 1;
  });
  // Another connection holds the database's write lock, as an operator's `sqlite3` shell can: the
  // writer thread's commits time out, and the answered events stay written ahead (or held in
  // memory once the store is known faulty).
  const lock = new Database(join(d.stateDir, STORE_FILE));
  t.after(() => lock.close());
  lock.exec('BEGIN IMMEDIATE');
  const summary = await simulate({ socket: d.socket, vms: 2, vcpus: 2, events: 300, vmPrefix: 'locked' });
  assert.equal(summary.answered, 300, 'verdicts do not wait for a store that cannot commit');
  const backlog = (text: string) =>
    metricSum(text, 'seawall_store_pending_events') + metricSum(text, 'seawall_store_held_events');
  let text = await until('the store to report its fault', async () => {
    const m = await scrape(d.metricsUrl as string);
    return metricSum(m, 'seawall_store_healthy') === 0 && m;
  });
  assert.equal(backlog(text), 300, 'pending + held = every answered event not committed');
  assert.ok(metricSum(text, 'seawall_store_pending_events') > 0, 'rows written ahead before the fault');
  // The locked VMs' session rows (and their APPLIED results) wait too; nothing is lost.
  assert.ok(metricSum(text, 'seawall_store_held_updates') >= 2, 'the two sessions opened under the lock');
  assert.equal(metricSum(text, 'seawall_store_lost_total'), 0);
  lock.exec('ROLLBACK');
  text = await until('the store to commit the backlog', async () => {
    const m = await scrape(d.metricsUrl as string);
    // Updates that waited go with the next hand-over, just after the recovery is reported.
    const updates = metricSum(m, 'seawall_store_held_updates');
    return metricSum(m, 'seawall_store_healthy') === 1 && backlog(m) === 0 && updates === 0 && m;
  });
  assert.equal(metricSum(text, 'seawall_store_backpressure_seconds_total'), 0, 'the bound was never reached');
  assert.equal(metricSum(text, 'seawall_store_session_holds_total'), 0, 'nor half of it');
  assert.equal(metricSum(text, 'seawall_store_lost_total'), 0);
  // No policy file: the built-in policy, whose sha256 is that of its text.
  assert.equal(
    metricSum(text, 'seawall_policy_info', (l) => l.includes(`sha256="${BUILTIN_SHA256}"`)),
    1,
    'seawall_policy_info carries the built-in policy sha256',
  );
  const events = await cliJson<unknown[]>(d.controlSocket, ['events', '--limit', '1000']);
  assert.equal(events.length, 301, 'every answered event is stored once');
});

test('alert rules link absolute runbook URLs; --runbook-base moves them and promtool accepts the result', async (t) => {
  const promtool = requireTool(t, 'promtool', 'prometheus');
  if (!promtool) return;
  const shipped = readFileSync(
    new URL('../../../metrics/rules/seawall-alerts.yaml', import.meta.url),
    'utf8',
  );
  const urls = [...shipped.matchAll(/runbook_url: "([^"]+)"/g)].map((m) => m[1] as string);
  assert.ok(urls.length >= 10);
  for (const u of urls)
    assert.match(u, /^file:\/\/\/usr\/share\/doc\/seawall\/operations\.md#seawall[a-z]+$/);
  const r = await runCli(['alert-rules', '--runbook-base', 'https://wiki.example/seawall/operations.md']);
  assert.equal(r.code, 0, r.stderr);
  const moved = [...r.stdout.matchAll(/runbook_url: "([^"]+)"/g)].map((m) => m[1] as string);
  assert.deepEqual(
    moved,
    urls.map((u) =>
      u.replace('file:///usr/share/doc/seawall/operations.md', 'https://wiki.example/seawall/operations.md'),
    ),
  );
  const dir = mkdtempSync(join(tmpdir(), 'seawall-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'rules.yaml'), r.stdout);
  const check = await runTool(promtool, ['check', 'rules', join(dir, 'rules.yaml')]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.equal((await runCli(['alert-rules', '--runbook-base', 'docs/operations.md'])).code, 2);
  // Each runbook anchor exists in docs/operations.md.
  const ops = readFileSync(join(DOCS, 'operations.md'), 'utf8');
  for (const u of urls) {
    const anchor = u.split('#')[1] as string;
    assert.ok(
      ops.split('\n').some((l) => l.startsWith('### ') && l.slice(4).toLowerCase() === anchor),
      `operations.md has a heading for #${anchor}`,
    );
  }
});

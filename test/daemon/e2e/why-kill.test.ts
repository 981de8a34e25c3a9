/**
 * "Why was this VM killed?", asked the way an operator would on a host where the daemon was
 * started by hand: no socket flags anywhere (the CLI finds $XDG_RUNTIME_DIR/seawall/), a fleet
 * from `seawall simulate` that a rate rule kills — and that survives it, because each simulated
 * VMM is a child process that exits on KILL — then `seawall why` naming the rule, the window's
 * events and the kill's outcome, and `policy explain --store` replaying the same decision.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { WhyResult } from '../../../control/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { CLI } from '../../helpers/daemon.js';
import { killOwned, spawnOwned } from '../../helpers/processes.js';
import { within } from '../../helpers/wait.js';
import { type CliResult, runCli } from './run-cli.js';

const POLICY = `version: 1
name: repeat-kill
rules:
  - name: repeat-offender
    match: { kind: sea, rate: { threshold: "3 / 10m", scope: vm } }
    action: { type: kill, grace: 30s }
default:
  action: { type: inject, abort: data }
`;

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runCli(args, { env });
}

test('a rate-rule kill: simulate survives it, why explains it, explain --store replays it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-why-'));
  let daemon: ChildProcess | null = null;
  t.after(async () => {
    if (daemon) await killOwned(daemon, 'the daemon');
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  // A daemon run by hand with its defaults: sockets under $XDG_RUNTIME_DIR/seawall/.
  const env = {
    PATH: process.env.PATH,
    XDG_RUNTIME_DIR: join(dir, 'run'),
    XDG_STATE_HOME: join(dir, 'state'),
    NOTIFY_SOCKET: '',
  };
  daemon = spawnOwned(
    process.execPath,
    [CLI, 'daemon', '--policy', join(dir, 'policy.yaml'), '--metrics', '127.0.0.1:0', '--log', 'stderr'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  createInterface({ input: daemon.stderr as NodeJS.ReadableStream }).on('line', (l) => output.push(l));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: daemon?.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      output.push(l);
      if (l.startsWith('seawall daemon ready')) resolve();
    });
    daemon?.once('exit', (c) => reject(new Error(`daemon exited ${c}:\n${output.join('\n')}`)));
  });
  await within('the daemon to be ready', ready, { state: () => output.join('\n') });

  // Two VMs, one vCPU each, five errors each: the third of a VM's errors within ten minutes kills it.
  const sim = await cli(
    ['simulate', '--vms', '2', '--vcpus', '1', '--events', '10', '--vm-prefix', 'why', '--json'],
    env,
  );
  assert.equal(sim.signal, null, 'simulate was not killed');
  assert.equal(sim.code, 0, sim.stderr);
  const summary = JSON.parse(sim.stdout) as {
    killed: string[];
    verdicts: Record<string, number>;
    sent: number;
  };
  assert.deepEqual(summary.killed.sort(), ['why-0', 'why-1']);
  assert.deepEqual(summary.verdicts, { inject: 4, kill: 2 }, 'each VM ended at its kill, as a VMM does');

  // why: the rule, the three events of its window, the outcome — once the kill has finished.
  let why: WhyResult | null = null;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const r = await cli(['why', 'why-0', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    why = JSON.parse(r.stdout) as WhyResult;
    if (why.entries[0]?.outcome && why.entries[0].outcome.outcome !== 'requested') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(why);
  assert.equal(why.entries.length, 1);
  const entry = why.entries[0];
  assert.ok(entry);
  assert.equal(entry.event.rule, 'repeat-offender');
  assert.equal(entry.decision, 'kill (grace 30000 ms)');
  const rate = entry.conditions?.find((c) => c.matcher === 'rate');
  assert.equal(rate?.expected, '3 / 10m per vm');
  assert.equal(rate?.evidence?.count, 3);
  assert.deepEqual(
    rate?.evidence?.events.map((e) => e.vm),
    ['why-0', 'why-0', 'why-0'],
  );
  assert.equal(entry.outcome?.outcome, 'exited', 'the simulated VMM exited on KILL: no SIGKILL needed');
  assert.equal(entry.outcome?.own, true);
  const text = await cli(['why', 'why-0'], env);
  assert.match(text.stdout, /rule {5}repeat-offender/);
  assert.match(
    text.stdout,
    /because {2}kind: sea\n {11}rate: 3 \/ 10m per vm — 3 events in the window, this one included:/,
  );
  assert.match(text.stdout, /outcome {2}kill the VMM exited within the grace \(enforcement not needed\)/);

  // explain --store: the kill replays as the rate rule, not as `default`.
  const events = JSON.parse((await cli(['events', '--vm', 'why-0', '--json'], env)).stdout) as StoredEvent[];
  const killed = events.find((e) => e.action === 'kill');
  assert.ok(killed);
  const event = JSON.stringify({
    kind: 'sea',
    vm: { id: 'why-0' },
    vcpu: 0,
    esr: killed.esr,
    gpa: killed.gpa,
    timeMs: killed.timeMs,
  });
  const args = ['policy', 'explain', '--policy', join(dir, 'policy.yaml'), '--event', event];
  const empty = JSON.parse((await cli(args, env)).stdout) as { matched: { rule: string } };
  assert.equal(empty.matched.rule, 'default', 'from empty state the rate rule cannot fire');
  const store = join(dir, 'state', 'seawall', 'events.sqlite');
  // The simulated errors come faster than one a millisecond: the kill's id says which of the
  // events stored in its millisecond the daemon had seen before it.
  const replayed = await cli([...args, '--store', store, '--event-id', String(killed.id)], env);
  assert.equal(replayed.code, 0, replayed.stderr);
  const x = JSON.parse(replayed.stdout) as { matched: { rule: string }; state: { eventsReplayed: number } };
  assert.equal(x.matched.rule, 'repeat-offender');
  assert.ok(x.state.eventsReplayed >= 2);
  // Without --event the stored event itself is explained: as the JSON made from it above.
  const byId = ['policy', 'explain', '--policy', join(dir, 'policy.yaml'), '--store', store];
  const stored = await cli([...byId, '--event-id', String(killed.id)], env);
  assert.equal(stored.code, 0, stored.stderr);
  const y = JSON.parse(stored.stdout) as typeof x & { summary: string };
  assert.equal(y.matched.rule, 'repeat-offender');
  assert.equal(y.summary, (x as typeof y).summary);
  assert.deepEqual(y.state, x.state);
  const missing = await cli([...byId, '--event-id', String(killed.id + 1_000_000)], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, new RegExp(`holds no event with id ${killed.id + 1_000_000}`));
});

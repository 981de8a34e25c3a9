#!/usr/bin/env node
// `npm run demo`: a newcomer's first look. Starts the compiled daemon on a private socket with a
// small tiered policy (gold VMs are migrated through a demo hook, the rest get an abort), drives it
// with a simulated fleet for a few seconds, then shows what an operator would look at: status, the
// event record, the poisoned pages, a few metrics. Everything runs under a temporary directory.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'bin', 'seawall.js');
const { simulate } = await import(pathToFileURL(join(root, 'dist', 'vmm', 'simulator.js')).href);
const { parseMix } = await import(pathToFileURL(join(root, 'dist', 'vmm', 'event-mix.js')).href);

const dir = mkdtempSync(join(tmpdir(), 'seawall-demo-'));
const policy = join(dir, 'policy.yaml');
const config = join(dir, 'seawall.yaml');
writeFileSync(
  policy,
  `version: 1
name: demo-tiered
hooks: [evacuate]
rules:
  - name: gold-migrate
    match: { labels: { tier: gold }, kind: [sea, nisv, mmio] }
    action:
      type: migrate
      hook: evacuate
      meanwhile: { abort: data }
      onFailure: { type: none }
  - name: sigbus-record-only
    match: { kind: sigbus }
    action: { type: none }
default:
  action: { type: inject, abort: data }
`,
);
// The demo's migration hook is /bin/true: every migration is "accepted".
writeFileSync(
  config,
  `metrics: 127.0.0.1:0\nactions:\n  hooks:\n    evacuate: { type: exec, argv: [/bin/true], timeoutMs: 2000 }\n`,
);

const args = [
  'daemon',
  '--config',
  config,
  '--policy',
  policy,
  '--socket',
  join(dir, 'plugin.sock'),
  '--control-socket',
  join(dir, 'control.sock'),
  '--state-dir',
  join(dir, 'state'),
  '--log',
  'stderr',
  // On stderr the default is a summary every 10 s, which the demo ends before: an entry per event.
  '--log-events',
  'each',
];
const daemon = spawn(process.execPath, [cli, ...args], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, NOTIFY_SOCKET: '' },
});
let metricsUrl = null;
const journal = [];
createInterface({ input: daemon.stderr }).on('line', (l) => journal.push(l));
await new Promise((resolve, reject) => {
  createInterface({ input: daemon.stdout }).on('line', (l) => {
    console.log(`  daemon │ ${l}`);
    const m = /^metrics:\s+(\S+)/.exec(l);
    if (m) metricsUrl = m[1];
    if (l.startsWith('seawall daemon ready')) resolve();
  });
  daemon.once('exit', (code) => reject(new Error(`daemon exited with ${code}:\n${journal.join('\n')}`)));
});

const run = (...a) => {
  const r = spawnSync(process.execPath, [cli, ...a, '--control-socket', join(dir, 'control.sock')], {
    encoding: 'utf8',
  });
  process.stdout.write(r.stdout + r.stderr);
};
try {
  console.log('\n▶ a simulated fleet: 6 VMs × 2 vCPUs (2 of them gold), 200 events/s for 4 s');
  const summary = await simulate({
    socket: join(dir, 'plugin.sock'),
    vms: 6,
    vcpus: 2,
    durationMs: 4000,
    rate: 200,
    mix: parseMix('sea=85,nisv=5,mmio=5,sigbus=5'),
    labelsFor: (i) => ({ tier: i < 2 ? 'gold' : 'silver', tenant: `t${i % 3}` }),
    vmPrefix: 'demo',
  });
  console.log(
    `  ${summary.sent} events, ${summary.answered} answered by the daemon, verdicts ${JSON.stringify(summary.verdicts)}`,
  );
  console.log(`  verdict latency µs: p50 ${summary.latencyUs.p50}, p99 ${summary.latencyUs.p99}`);
  console.log('\n▶ seawall status');
  run('status');
  console.log('\n▶ seawall vms');
  run('vms');
  console.log('\n▶ seawall events --vm demo-0 --limit 5   (a gold VM: migrated)');
  run('events', '--vm', 'demo-0', '--limit', '5');
  console.log('\n▶ seawall poison --vm demo-3   ');
  run('poison', '--vm', 'demo-3');
  if (metricsUrl) {
    console.log(`\n▶ ${metricsUrl} (excerpt)`);
    const text = await (await fetch(metricsUrl)).text();
    for (const l of text.split('\n')) {
      if (/^seawall_(actions_total|migrations_total|verdict_latency_seconds_count|policy_info)/.test(l))
        console.log(`  ${l}`);
    }
  }
  console.log('\n▶ the journal (stderr here; journald under systemd), last 3 entries');
  for (const l of journal.filter((x) => x.startsWith('memory error')).slice(-3))
    console.log(`  ${l.slice(0, 160)}…`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}

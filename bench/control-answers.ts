/**
 * What the control socket's largest answers cost the verdict path: a daemon holding `--rows`
 * events of one VM with 32 labels of 63 + 255 bytes, so that every `events` answer stops at its
 * bound of 8 MiB (store/answer-bytes.ts); a probe VM in this process asking for a verdict every
 * 2 ms; in each round, 300 probe verdicts alone, then `--reads` answers of
 * `{"cmd":"events","args":{"limit":10000}}` read one after another by a process of their own (a raw
 * client that only counts the bytes, or `seawall events --limit 10000 --json` with `--client cli`).
 * Printed per phase: the probe's p99 and max, the daemon's event-loop delay (bench/loop-delay.mjs)
 * and how long its main thread ran and waited for a CPU (/proc schedstat), and the CPU its main
 * thread gave each answer beyond the probe's verdicts (their cost measured alone).
 * Usage: node --import tsx bench/control-answers.ts [--rounds R] [--rows N] [--reads N]
 *   [--client raw|cli] [--cli PATH-TO-ANOTHER-BUILD/dist/bin/seawall.js]
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DEFAULT_CAPS, PluginClient, seaExit } from '../vmm/index.js';
import { end, stop, tempDir, track } from './servers.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    rows: { type: 'string', default: '3000' },
    reads: { type: 'string', default: '5' },
    client: { type: 'string', default: 'raw' },
    cli: { type: 'string' },
  },
});
const CLI = values.cli ?? new URL('../dist/bin/seawall.js', import.meta.url).pathname;
const LOOP_DELAY = new URL('./loop-delay.mjs', import.meta.url).pathname;
/** Reads one answer and prints its length in bytes, parsing nothing. */
const RAW_READ = `const s = require('node:net').connect(process.argv[1]); let n = 0;
s.on('connect', () => s.write('{"id":1,"cmd":"events","args":{"limit":10000}}\\n'));
s.on('data', (b) => { n += b.length; if (b[b.length - 1] === 10) { console.log(n); s.end(); } });`;

const dir = tempDir('seawall-answers-');
const policy = join(dir, 'policy.yaml');
writeFileSync(policy, 'version: 1\nname: p\nrules: []\ndefault:\n  action: { type: inject, abort: data }\n');
const [socket, control] = [join(dir, 'plugin.sock'), join(dir, 'control.sock')];
const daemon = spawn(
  process.execPath,
  ['--import', LOOP_DELAY, CLI, 'daemon', '--socket', socket, '--control-socket', control].concat([
    '--state-dir',
    join(dir, 'state'),
    '--log',
    'stderr',
    '--no-metrics',
    '--policy',
    policy,
  ]),
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } },
);
track(daemon);
const lines = createInterface({ input: daemon.stdout as NodeJS.ReadableStream });
/** The daemon's last log lines, said if it exits. */
const said: string[] = [];
createInterface({ input: daemon.stderr as NodeJS.ReadableStream }).on('line', (l) => {
  if (said.push(l) > 20) said.shift();
});
/** The next stdout line of the daemon that starts with `prefix`, within 60 s. */
function nextLine(prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" line within 60 s`)), 60_000);
    const exited = (code: number | null) =>
      reject(new Error(`the daemon exited (${code}):\n${said.join('\n')}`));
    const on = (l: string) => {
      if (!l.startsWith(prefix)) return;
      clearTimeout(timer);
      lines.off('line', on);
      daemon.off('exit', exited);
      resolve(l);
    };
    lines.on('line', on);
    daemon.once('exit', exited);
  });
}
await nextLine('seawall daemon ready');
const pid = daemon.pid as number;

let sched: [number, number] = [0, 0];
/** The event loop's delay since the last call, and the main thread's run and wait (ms). */
async function daemonPhase(): Promise<{ delayMax: number; delayP99: number; ran: number; waited: number }> {
  const line = nextLine('loop-delay ');
  process.kill(pid, 'SIGUSR2');
  const [, max, , p99] = (await line).slice('loop-delay '.length).split(' ').map(Number);
  const [ran, waited] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  const phase = {
    delayMax: (max as number) / 1e6,
    delayP99: (p99 as number) / 1e6,
    ran: ((ran as number) - sched[0]) / 1e6,
    waited: ((waited as number) - sched[1]) / 1e6,
  };
  sched = [ran as number, waited as number];
  return phase;
}

const labels: Record<string, string> = {};
for (let i = 0; i < 32; i++)
  labels[`label-${String(i).padStart(2, '0')}-${'k'.repeat(54)}`] = 'v'.repeat(255);
const loud = new PluginClient({ socket, vmId: 'labelled-vm', vcpuCount: 1, caps: DEFAULT_CAPS, labels });
await loud.connect();
for (let i = 0; i < Number(values.rows); i++) await loud.handleExit(seaExit({ gpa: 0x9000n }));
await loud.close();

const probe = new PluginClient({ socket, vmId: 'probe-vm', vcpuCount: 1, caps: DEFAULT_CAPS });
await probe.connect();
let samples = null as number[] | null;
let probing = true;
const probed = (async () => {
  while (probing) {
    const out = await probe.handleExit(seaExit({ gpa: 0x7000n }));
    samples?.push(Number(out.latencyNs) / 1e6);
    await new Promise((r) => setTimeout(r, 2));
  }
})();

/** One read of an answer by a process of its own; resolves with its output's size in bytes. */
function read(i: number): Promise<number> {
  const out = join(dir, `answer-${i}.json`);
  const args =
    values.client === 'cli'
      ? [CLI, 'events', '--limit', '10000', '--json', '--control-socket', control]
      : ['-e', RAW_READ, control];
  const child = spawn(process.execPath, args, { stdio: ['ignore', openSync(out, 'w'), 'inherit'] });
  track(child);
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`read ${i} exited ${code}`));
      else resolve(values.client === 'cli' ? readFileSync(out).length : Number(readFileSync(out, 'utf8')));
    }),
  );
}

const fmt = (v: number[]) => {
  const sorted = [...v].sort((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] as number;
  return `probe p99 ${p99.toFixed(1)} max ${(sorted[sorted.length - 1] as number).toFixed(1)} ms (${v.length})`;
};
const loop = (p: Awaited<ReturnType<typeof daemonPhase>>) =>
  `event loop delay max ${p.delayMax.toFixed(1)} p99 ${p.delayP99.toFixed(1)} ms, ran ${p.ran.toFixed(0)} ms, waited for a CPU ${p.waited.toFixed(0)} ms`;
console.log(
  `daemon ${CLI}, ${values.rows} rows of 32 labels, ${values.reads} reads a round by ${values.client}`,
);
await daemonPhase();
for (let r = 0; r < Number(values.rounds); r++) {
  samples = [];
  while (samples.length < 300) await new Promise((res) => setTimeout(res, 20));
  const alone = samples;
  const before = await daemonPhase();
  samples = [];
  let bytes = 0;
  for (let i = 0; i < Number(values.reads); i++) bytes = await read(i);
  const during = samples;
  samples = null;
  const reads = await daemonPhase();
  console.log(`round ${r + 1}, the last read gave ${bytes} bytes`);
  // The event loop's CPU for the answers: what it ran beyond the probe's verdicts, at their cost alone.
  const answers = (reads.ran - (during.length * before.ran) / alone.length) / Number(values.reads);
  console.log(`  alone:      ${fmt(alone)}; ${loop(before)}`);
  console.log(`  reads:      ${fmt(during)}; ${loop(reads)}`);
  console.log(`  main thread's CPU per answer, beyond the probe's verdicts: ${answers.toFixed(1)} ms`);
}
probing = false;
await probed;
await probe.close();
await stop(daemon);
end();

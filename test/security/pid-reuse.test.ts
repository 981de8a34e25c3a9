/**
 * Issue 12, item 1: a plugin connects, hands its socket to a child and exits; its PID goes to an
 * innocent process before the child says HELLO; a KILL verdict must not reach the innocent one.
 * The daemon takes the peer's pidfd at accept (SO_PEERPIDFD), so a kill names the process that
 * connected — gone — and the innocent process survives. The daemon ends that session (its
 * connecting process is gone while the child holds it; a kill of it ends failed, never exited),
 * and the child, connecting again itself, is the process the next kill signals. PID reuse is forced through
 * /proc/sys/kernel/ns_last_pid (root), retried when another process takes the number first.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import type { Pidfd } from '../../kvm/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { killStarted, learnt, spawnWithPid } from '../helpers/pid-reuse.js';
import { until, writePolicy } from './fixtures.js';

const HELPER = new URL('./children/handoff-plugin.ts', import.meta.url).pathname;
const started: ChildProcess[] = [];
const pids: (Pidfd | null)[] = [];
let d: RunningDaemon | null = null;

after(async () => {
  killStarted(started, pids);
  if (d) {
    await d.kill();
    removeDir(d.dir);
  }
});

test('a KILL verdict never reaches a process that inherited the plugin PID', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to steer PID allocation');
  const dir = mkdtempSync('/tmp/seawall-pid-');
  const policy = writePolicy(dir, 'kill-all', [
    'rules: []',
    'default:',
    '  action: { type: kill, grace: 200ms }',
  ]);
  // Arranging the PID reuse takes a while: the connection may wait longer than usual for HELLO.
  const config = join(dir, 'seawall.yaml');
  writeFileSync(config, 'limits: { helloTimeoutMs: 120000 }\n');
  d = await startDaemon({ args: ['--policy', policy, '--config', config], metrics: false });

  const go = join(dir, 'go');
  const parent = spawn(process.execPath, ['--import', 'tsx', HELPER, 'parent', d.socket, go], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  started.push(parent);
  const lines = createInterface({ input: parent.stdout as NodeJS.ReadableStream });
  const seen: string[] = [];
  lines.on('line', (l) => seen.push(l));
  await until(
    () => seen.some((l) => l.startsWith('parent ')) && seen.includes('ready'),
    60_000,
    'the hand-over',
  );
  const [, parentPid, , childPid] = (seen.find((l) => l.startsWith('parent ')) as string).split(' ');
  pids.push(learnt(Number(childPid)));
  await until(() => parent.exitCode !== null, 30_000, 'the parent to exit');

  const innocent = await spawnWithPid(Number(parentPid), 'sleep', ['1000'], { stdio: 'ignore' }, started);
  if (!innocent) return t.skip(`could not get pid ${parentPid} reused (a busy machine took it)`);

  writeFileSync(go, ''); // the child says HELLO now, and reports an event
  const daemon = d;
  const killLine = /VM handoff-vm kill \(policy.*\): (exited|sigkilled|failed)/;
  await until(
    () => daemon.output.some((l) => /kill \(policy.*\): sigkilled/.test(l)),
    30_000,
    'the kill of the child that connected again',
  ).catch((e) => {
    throw new Error(
      `${e.message}; plugin said: ${seen.join(' | ')}; daemon said: ${daemon.output.join('\n')}`,
    );
  });
  const kills = daemon.output.filter((l) => killLine.test(l));
  assert.equal(innocent.exitCode, null, `the innocent process was killed: ${kills.join(' | ')}`);
  assert.equal(innocent.signalCode, null, `the innocent process was killed: ${kills.join(' | ')}`);
  // The session on the handed-on connection ended with GOODBYE NORMAL before the child connected
  // again; a kill of it, if its event was decided first, is not taken for the VM gone.
  assert.ok(
    seen.indexOf('goodbye 0') >= 0 && seen.indexOf('goodbye 0') < seen.indexOf('ended'),
    seen.join(' | '),
  );
  assert.ok(seen.includes('ended'), seen.join(' | '));
  const gone = new RegExp(
    `: failed — the connecting process \\(pid ${parentPid}\\) exited; its connection lives on`,
  );
  for (const k of kills) assert.ok(gone.test(k) || /: sigkilled/.test(k), k);
  assert.equal(kills.filter((k) => /: sigkilled/.test(k)).length, 1, kills.join(' | '));
  // The process signalled is the child, under its own credentials.
  const child = pids[0];
  await until(() => child?.exited() ?? true, 30_000, 'the child to be gone');
  removeDir(dir);
});

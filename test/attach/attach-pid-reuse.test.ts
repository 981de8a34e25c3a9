/**
 * The attach socket's peer check against PID reuse: a process connects to the attach socket, hands
 * the connection to a child and exits; its PID goes to a plugin that says HELLO; the child then asks
 * to attach a vCPU of that plugin's session. Same PID by SO_PEERCRED, but not the same process: the
 * daemon compares the two processes' pidfds (both must be alive), and refuses with PEER_MISMATCH.
 * PID reuse is forced through /proc/sys/kernel/ns_last_pid (root), retried when another process
 * takes the number first.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import type { AttachServer } from '../../attach/index.js';
import type { Pidfd } from '../../kvm/index.js';
import { ATTACH_STATUS } from '../../protocol/index.js';
import { killStarted, learnt, spawnWithPid } from '../helpers/pid-reuse.js';
import { exitOf } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { INJECT, provider, type Stack, standInAttachServer, startStack } from './stack.js';

const HANDOFF = new URL('./children/attach-handoff.ts', import.meta.url).pathname;
const PLUGIN = new URL('./children/pid-plugin.ts', import.meta.url).pathname;
const started: ChildProcess[] = [];
const pids: (Pidfd | null)[] = [];
let stack: Stack | null = null;
let attach: AttachServer | null = null;

after(async () => {
  killStarted(started, pids);
  attach?.close();
  await stack?.close();
});

function lines(p: ChildProcess): string[] {
  const seen: string[] = [];
  createInterface({ input: p.stdout as NodeJS.ReadableStream }).on('line', (l) => seen.push(l));
  return seen;
}

test('an attach connection made by an earlier holder of the plugin’s PID is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to steer PID allocation');
  stack = await startStack(provider(() => INJECT));
  attach = standInAttachServer(stack.dir);
  attach.listen();
  stack.bus.add(attach.sink());

  // The child outlives its parent, whose stdin Node closes at its exit: the session id goes by a fifo.
  const fifo = join(stack.dir, 'session-id');
  execFileSync('mkfifo', [fifo]);
  const parent = spawn(
    process.execPath,
    ['--import', 'tsx', HANDOFF, 'parent', join(stack.dir, 'attach.sock'), fifo],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  started.push(parent);
  const said = lines(parent);
  const hello = await until('the hand-over', () => said.find((l) => l.startsWith('parent ')));
  const [, parentPid, , childPid] = hello.split(' ');
  pids.push(learnt(Number(childPid)));
  await within('the parent to exit', exitOf(parent));

  // A shell that waits for a line, then execs the plugin: the PID is had before the plugin runs.
  const plugin = await spawnWithPid(
    Number(parentPid),
    'sh',
    [
      '-c',
      'read go; exec "$0" "$@"',
      process.execPath,
      '--import',
      'tsx',
      PLUGIN,
      stack.socket,
      'vm-pid-reuse',
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
    started,
  );
  if (!plugin) return t.skip(`could not get pid ${parentPid} reused (a busy machine took it)`);
  const pluginSaid = lines(plugin);
  plugin.stdin?.write('go\n');
  const session = await until('the plugin’s WELCOME', () => pluginSaid.find((l) => l.startsWith('session ')));

  // The child holds the connection its exited parent made, with the plugin's PID as its credentials.
  await until('the child to open the fifo', () => said.includes('ready'));
  const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  writeSync(w, `${session.split(' ')[1]}\n`);
  closeSync(w);
  const answer = await until('the child’s answer', () => said.find((l) => l.startsWith('{')));
  assert.deepEqual(JSON.parse(answer), { status: ATTACH_STATUS.PEER_MISMATCH });
  assert.equal(attach.stats.attached, 0);
});

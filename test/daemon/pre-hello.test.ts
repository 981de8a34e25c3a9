/**
 * The per-process bound on connections before HELLO (daemon/pre-hello.ts), on a real Unix
 * socket: one process holding its share of silent connections, and reconnecting without reading
 * or closing what it is refused, does not keep another process's VM out.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { PRE_HELLO_PER_PROCESS } from '../../daemon/pre-hello.js';
import { ConnectionsByProcess } from '../../kvm/index.js';
import { FrameParser, type Message, PLUGIN_ACCEPTS, WIRE_ERROR } from '../../protocol/index.js';
import { INJECT, provider, startStack } from '../attach/stack.js';
import { spawnOwned, stopOwned } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';
import { until, within } from '../helpers/wait.js';

/** Says HELLO, prints `session <id>` from its WELCOME (or the type of another answer). */
const PLUGIN = new URL('../attach/children/pid-plugin.ts', import.meta.url).pathname;
const MAX_SESSIONS = 12;

/**
 * A connection as a hostile peer keeps it: never says anything, never closes its side (not even
 * after the daemon's FIN), and reads only to see the first frame the daemon sends.
 */
function silentPeer(path: string, sockets: Socket[]): { first: Promise<Message | 'closed'> } {
  const s = connect({ path, allowHalfOpen: true });
  sockets.push(s);
  s.on('error', () => {});
  const first = new Promise<Message | 'closed'>((resolve) => {
    const parser = new FrameParser(resolve, { accept: PLUGIN_ACCEPTS });
    s.on('data', (c: Buffer) => parser.push(c));
    s.once('close', () => resolve('closed'));
  });
  return { first };
}

test('a process holding its share of connections before HELLO is refused more; another gets in', async (t) => {
  const stack = await startStack(
    provider(() => INJECT),
    undefined,
    { maxSessions: MAX_SESSIONS },
  );
  const sockets: Socket[] = [];
  const children: ChildProcess[] = [];
  // FIFO: sockets and the child go before the server is awaited.
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  t.after(async () => {
    for (const c of children) await stopOwned(c, 'the second plugin process');
  });
  t.after(() => stack.close());

  // This process's share, held silent: one a client that says HELLO later, the rest bare.
  const mine = await RawClient.open(stack.socket);
  sockets.push(mine.socket);
  for (let i = 1; i < PRE_HELLO_PER_PROCESS; i++) silentPeer(stack.socket, sockets);
  await until(
    `${PRE_HELLO_PER_PROCESS} connections before HELLO`,
    () => stack.server.preHelloCount === PRE_HELLO_PER_PROCESS,
    { state: () => `${stack.server.preHelloCount} counted` },
  );

  // More from this process than there are slots at all: each refused, naming the bound.
  const over = Array.from({ length: MAX_SESSIONS }, () => silentPeer(stack.socket, sockets));
  for (const [i, p] of over.entries()) {
    const m = await within(`the answer to over-share connection ${i}`, p.first);
    assert.ok(m !== 'closed' && m.type === 'reject', `connection ${i}: ${JSON.stringify(m)}`);
    assert.equal(m.code, WIRE_ERROR.TOO_MANY_SESSIONS);
    assert.match(
      m.message,
      new RegExp(`at most ${PRE_HELLO_PER_PROCESS} connections per process before HELLO`),
    );
  }
  assert.equal(stack.server.preHelloCount, PRE_HELLO_PER_PROCESS, 'refused connections are not counted');

  // Another process's VM (another SO_PEERCRED pid) is admitted while all of that is held open.
  const child = spawnOwned(process.execPath, ['--import', 'tsx', PLUGIN, stack.socket, 'other-vm'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const said: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => said.push(l));
  await until('the other process to hear from the daemon', () => said.length > 0);
  assert.match(said[0] as string, /^session \d+$/, `the other VM's HELLO: ${said[0]}`);

  // A held connection that says HELLO leaves the count: this process may connect again.
  await mine.hello('this-vm');
  assert.equal(stack.server.preHelloCount, PRE_HELLO_PER_PROCESS - 1, 'admitted before its WELCOME');
  const again = await RawClient.open(stack.socket);
  sockets.push(again.socket);
  await again.hello('this-vm-2');
});

test('connections made by a process that has exited do not count for a process reusing its PID', () => {
  const counts = new ConnectionsByProcess<{ exited: boolean }>((c) => c.exited);
  const conn = () => ({ exited: false });
  const held = Array.from({ length: PRE_HELLO_PER_PROCESS }, conn);
  for (const c of held) counts.add(42, c);
  assert.equal(counts.count(42), PRE_HELLO_PER_PROCESS);
  for (const c of held) c.exited = true; // handed on and gone; PID 42 now names another process
  assert.equal(counts.count(42), 0);
  assert.equal(counts.size, PRE_HELLO_PER_PROCESS, 'still tracked until admitted or closed');
  for (const c of held) counts.remove(42, c);
  assert.equal(counts.size, 0);
});

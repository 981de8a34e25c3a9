/**
 * A KILL verdict with `onKill: 'stop'` (what each process of `seawall simulate` runs): the VM is
 * reported killed before its session is closed. A kill policy's short grace SIGKILLs the VMM
 * soon after the verdict; a report that waited for the close would be lost with the process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ACTION, DAEMON_ACCEPTS, encodeMessage, FrameParser, type Message } from '../../protocol/index.js';
import { simulate } from '../../vmm/simulator.js';
import { plainVerdict, plainWelcome } from '../helpers/verdicts.js';
import { within } from '../helpers/wait.js';

const EVENTS = new Set<Message['type']>(['sea', 'nisv', 'mmio', 'sigbus']);

test('onKilled is told of a KILL verdict before the session says GOODBYE', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-simkill-'));
  const path = join(dir, 'plugin.sock');
  const conns = new Set<Socket>();
  let goodbyeSeen = false;
  // A daemon that kills at the first event and ends the session at its GOODBYE, as the real one does.
  const server = createServer((conn) => {
    conns.add(conn);
    conn.on('error', () => {});
    const parser = new FrameParser(
      (m: Message) => {
        if (m.type === 'hello') conn.write(encodeMessage(plainWelcome(m)));
        else if (EVENTS.has(m.type))
          conn.write(encodeMessage(plainVerdict((m as { seq: number }).seq, ACTION.KILL)));
        else if (m.type === 'goodbye') {
          goodbyeSeen = true;
          conn.end();
        }
      },
      { accept: DAEMON_ACCEPTS },
    );
    conn.on('data', (chunk: Buffer) => parser.push(chunk));
  });
  await within('the scripted daemon to listen', new Promise<void>((r) => server.listen(path, r)));
  t.after(async () => {
    for (const c of conns) c.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const told: { vm: string; goodbyeSeen: boolean }[] = [];
  const summary = await within(
    'the simulation to end',
    simulate({
      socket: path,
      vms: 1,
      vcpus: 1,
      events: 5,
      vmPrefix: 'doomed',
      onKill: 'stop',
      onKilled: (vm) => told.push({ vm, goodbyeSeen }),
    }),
  );
  assert.deepEqual(summary.killed, ['doomed-0']);
  assert.equal(summary.sent, 1, 'the killed VM sent nothing after its KILL verdict');
  assert.deepEqual(told, [{ vm: 'doomed-0', goodbyeSeen: false }]);
  assert.equal(goodbyeSeen, true, 'the session was closed after all');
});

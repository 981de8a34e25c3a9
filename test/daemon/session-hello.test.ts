/**
 * A second HELLO on an admitted session, on the in-process daemon core (test/attach/stack.ts): it
 * is ERROR DUPLICATE_HELLO whatever its version or layout (docs/protocol.md §3 rule 1), and the
 * session is counted once, as a protocol error, never also as refused at the door.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { PluginSession } from '../../daemon/session.js';
import { encodeMessage, HEADER_SIZE, type Message, ProtocolError, WIRE_ERROR } from '../../protocol/index.js';
import { INJECT, provider, type Stack, startStack } from '../attach/stack.js';
import { RawClient } from '../helpers/raw-client.js';
import { within } from '../helpers/wait.js';

const stacks: Stack[] = [];
after(async () => {
  for (const s of stacks) await s.close();
});

const hello = (vmId: string, version = 1): Extract<Message, { type: 'hello' }> => ({
  type: 'hello',
  version,
  minor: 1,
  caps: 0x13,
  vmmPid: process.pid,
  vcpuCount: 4,
  extAbtEsrCap: 0,
  vmId,
  labels: {},
});

/** A HELLO of version 2.1 (encoded as 1.1, its major then rewritten): not spoken by this daemon. */
function helloV2(vmId: string): Buffer {
  const b = encodeMessage(hello(vmId));
  b.writeUInt16LE(2, HEADER_SIZE);
  return b;
}

/** A HELLO whose vm_id length is 0: a field error were it decoded. */
function helloNoId(vmId: string): Buffer {
  const b = encodeMessage(hello(vmId));
  b.writeUInt16LE(0, HEADER_SIZE + 20);
  return b;
}

for (const [what, second] of [
  ['the same HELLO', (vm: string) => encodeMessage(hello(vm))],
  ['a HELLO of a version not spoken here', helloV2],
  ['a HELLO with a field error', helloNoId],
] as const) {
  test(`${what} after WELCOME: ERROR DUPLICATE_HELLO, one outcome for the session`, async () => {
    const s = await startStack(provider(() => INJECT));
    stacks.push(s);
    // seawall_plugin_sessions_ended_total counts sessionRejected as `rejected` and sessionClosed
    // by its outcome: a session has exactly one of the two.
    const seen: string[] = [];
    let ended = () => {};
    const done = new Promise<void>((resolve) => {
      ended = resolve;
    });
    s.bus.add({
      name: 'outcomes',
      sessionRejected: (reason) => {
        seen.push(`rejected ${reason}`);
        ended();
      },
      protocolError: (reason) => seen.push(`protocol error ${reason}`),
      sessionClosed: (_s, outcome) => {
        seen.push(`closed ${outcome}`);
        ended();
      },
    });
    const c = await RawClient.open(s.socket);
    await c.hello('vm-twice', { minor: 1 });
    c.send(second('vm-twice'));
    await c.closed;
    await within('the session to end', done);
    const last = c.received.at(-1);
    assert.deepEqual(
      { answer: last?.type === 'error' ? `ERROR ${last.code}` : last?.type, seen },
      {
        answer: `ERROR ${WIRE_ERROR.DUPLICATE_HELLO}`,
        seen: ['protocol error duplicate_hello', 'closed protocol_error'],
      },
    );
  });
}

test('a version refusal on a session already admitted is a protocol error, not also a rejection', async () => {
  // The parser answers any later HELLO with DUPLICATE_HELLO; this is the count's own guard.
  const s = await startStack(provider(() => INJECT));
  stacks.push(s);
  const seen: string[] = [];
  s.bus.add({
    name: 'outcomes',
    sessionRejected: (reason) => seen.push(`rejected ${reason}`),
    protocolError: (reason) => seen.push(`protocol error ${reason}`),
  });
  const err = new ProtocolError('VERSION', 'protocol version 2.1 is not spoken here');
  const admitted = { info: { vm: { id: 'vm-admitted' } }, peer: null } as unknown as PluginSession;
  s.server.protocolError(admitted, err);
  s.server.protocolError({ info: null, peer: null } as unknown as PluginSession, err);
  assert.deepEqual(seen, ['protocol error version', 'rejected version']);
});

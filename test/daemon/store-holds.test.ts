/**
 * The write-ahead bound by session, on the daemon's side (daemon/plugin-server.ts `holdForStore`,
 * daemon/session.ts): the sessions the store names are not read — their events wait unanswered,
 * the rest of a read already taken with them — while every other VM is answered; released, they
 * are answered in order. On real sockets, through the real plugin server and pipeline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seaFrame } from '../../vmm/sample-events.js';
import { INJECT, provider, startStack } from '../attach/stack.js';
import { RawClient } from '../helpers/raw-client.js';

test("a session the store holds is not read, the VM beside it is answered, and release answers the held one's events in order", async (t) => {
  let hold: (() => void) | null = null;
  // The hold comes as the loud VM's first event is decided, in the middle of its read: as the
  // store's would, from the hand-over that a batch's rows make.
  const s = await startStack(
    provider((e) => {
      if (e.vm.id === 'vm-loud' && hold) {
        hold();
        hold = null;
      }
      return INJECT;
    }),
  );
  t.after(() => s.close());
  const loud = await RawClient.open(s.socket);
  t.after(() => loud.destroy());
  await loud.hello('vm-loud');
  const quiet = await RawClient.open(s.socket);
  t.after(() => quiet.destroy());
  await quiet.hello('vm-quiet');
  const id = s.server.sessions.find((i) => i.vm.id === 'vm-loud')?.id;
  assert.ok(id !== undefined);
  // A session id that is not connected holds nobody.
  let named: string[] = [];
  hold = () => {
    named = s.server.holdForStore([id, id + 1000n]);
  };
  loud.send(Buffer.concat(Array.from({ length: 3000 }, (_, i) => seaFrame(i + 1))));
  await loud.waitFor('verdict', (m) => m.seq === 1);
  assert.equal(s.server.heldCount, 1);
  assert.deepEqual(named, ['vm-loud'], 'the VM newly held, for the journal');
  assert.deepEqual(s.server.holdForStore([id]), [], 'held already: not named again');
  for (let seq = 1; seq <= 3; seq++) {
    quiet.send(seaFrame(seq));
    await quiet.waitFor('verdict', (m) => m.seq === seq);
  }
  const verdicts = () => loud.received.filter((m) => m.type === 'verdict').map((m) => m.seq);
  assert.deepEqual(verdicts(), [1], 'the held VM got no verdict past the event that held it');
  assert.equal(s.pipeline.decided, 4, "the quiet VM's events were decided meanwhile");
  s.server.releaseStoreHolds([id]);
  await loud.waitFor('verdict', (m) => m.seq === 3000);
  assert.deepEqual(
    verdicts(),
    Array.from({ length: 3000 }, (_, i) => i + 1),
  );
  assert.equal(s.server.heldCount, 0);
});

test("a held session's VMM that hangs up does not keep its VM id: the VM's new session is welcomed", async (t) => {
  const s = await startStack(provider(() => INJECT));
  t.after(() => s.close());
  const old = await RawClient.open(s.socket);
  t.after(() => old.destroy());
  await old.hello('vm-back');
  const id = s.server.sessions.find((i) => i.vm.id === 'vm-back')?.id;
  assert.ok(id !== undefined);
  assert.deepEqual(s.server.holdForStore([id]), ['vm-back']);
  // Events it sent and the daemon did not read: without them a paused socket still sees its end.
  old.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => seaFrame(i + 1))));
  old.destroy();
  await old.closed;
  // Its unread events before its end: it has not seen the end, only the check at HELLO finds it gone.
  assert.equal(s.server.connectionCount, 1);
  const next = await RawClient.open(s.socket);
  t.after(() => next.destroy());
  await next.hello('vm-back');
  next.send(seaFrame(1));
  await next.waitFor('verdict', (m) => m.seq === 1);
});

/**
 * `status` is made and encoded on the event loop that answers vCPUs, so its answer is bounded
 * whatever the plugins connected: 1,024 sessions (the default `limits.maxSessions`), each with the
 * largest VM id and 32 labels of 63 + 255 bytes a HELLO may carry, all of them control bytes that
 * escape to six characters, made a 52 MB answer. Now it lists the first STATUS_MAX_SESSIONS opened,
 * without labels, and counts the rest.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { STATUS_MAX_SESSIONS, type StatusResult } from '../../control/index.js';
import type { SessionInfo } from '../../events/session-info.js';
import { within } from '../helpers/wait.js';
import { session } from '../store/records.js';
import { startControl } from './fixture.js';

const SESSIONS = 1024;

/** A session as large as the protocol allows: a 128-byte VM id and 32 full labels, all escaping ×6. */
function fatSession(i: number): SessionInfo {
  const labels: Record<string, string> = {};
  for (let k = 0; k < 32; k++) labels[`k${String(k).padStart(62, '0')}`] = '\u0001'.repeat(255);
  const id = `vm-${i}`;
  return session(id + '\u0001'.repeat(128 - id.length), BigInt(i), labels);
}

/** The one answer line to a status request as raw bytes, read whole whatever its size. */
function statusBytes(path: string, request = '{"id":1,"cmd":"status"}'): Promise<Buffer> {
  return within(
    'the status answer line',
    new Promise<Buffer>((resolve, reject) => {
      const sock = connect(path);
      const parts: Buffer[] = [];
      sock.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        if (chunk.includes(0x0a)) {
          sock.destroy();
          resolve(Buffer.concat(parts));
        }
      });
      sock.once('error', reject);
      sock.once('connect', () => sock.write(`${request}\n`));
    }),
  );
}

test('status lists at most STATUS_MAX_SESSIONS sessions, without labels, however large the sessions', async (t) => {
  const f = await startControl({}, true);
  t.after(() => f.close());
  // Held in no particular order: the first opened (lowest ids) are the ones listed.
  for (let i = SESSIONS; i >= 1; i--) f.sessions.push(fatSession(i));
  const bytes = await statusBytes(f.socket);
  // Each listed session: its VM id escaped (128 × 6 bytes) and under 200 bytes of other fields.
  const bound = STATUS_MAX_SESSIONS * (128 * 6 + 200) + 4096;
  assert.ok(bytes.length <= bound, `status answer: ${bytes.length} bytes, over ${bound}`);
  const reply = JSON.parse(bytes.toString('utf8')) as { ok: boolean; result: StatusResult };
  assert.equal(reply.ok, true);
  const s = reply.result;
  assert.equal(s.sessionCount, SESSIONS);
  assert.equal(s.sessions.length, STATUS_MAX_SESSIONS);
  assert.equal(s.sessionsOmitted, SESSIONS - STATUS_MAX_SESSIONS);
  assert.deepEqual(
    s.sessions.map((x) => x.id),
    Array.from({ length: STATUS_MAX_SESSIONS }, (_, i) => String(i + 1)),
  );
  assert.equal(s.sessions[0]?.vm, fatSession(1).vm.id);
  for (const x of s.sessions) assert.ok(!('labels' in x), `session ${x.id} carries its labels`);
});

test('status with fewer sessions than the bound lists them all and leaves none out', async (t) => {
  const f = await startControl();
  t.after(() => f.close());
  f.sessions.push(fatSession(2), fatSession(1));
  const reply = JSON.parse((await statusBytes(f.socket)).toString('utf8')) as { result: StatusResult };
  assert.equal(reply.result.sessionCount, 2);
  assert.equal(reply.result.sessionsOmitted, 0);
  assert.deepEqual(
    reply.result.sessions.map((x) => x.id),
    ['1', '2'],
  );
});

test("status for one VM lists that VM's session alone, with its labels, among a full set", async (t) => {
  const f = await startControl({}, true);
  t.after(() => f.close());
  for (let i = SESSIONS; i >= 1; i--) f.sessions.push(fatSession(i));
  const vm = fatSession(700).vm.id;
  const request = JSON.stringify({ id: 2, cmd: 'status', args: { vm } });
  const bytes = await statusBytes(f.socket, request);
  // One session's labels: 32 × (63 + 255 × 6) bytes and the session's own fields.
  assert.ok(bytes.length < 64 * 1024, `status answer for one VM: ${bytes.length} bytes`);
  const s = (JSON.parse(bytes.toString('utf8')) as { result: StatusResult }).result;
  assert.equal(s.sessionCount, SESSIONS);
  assert.equal(s.sessionsOmitted, 0);
  assert.deepEqual(
    s.sessions.map((x) => [x.id, x.vm]),
    [['700', vm]],
  );
  assert.deepEqual(s.sessions[0]?.labels, fatSession(700).vm.labels);
  const none = await statusBytes(f.socket, JSON.stringify({ id: 3, cmd: 'status', args: { vm: 'absent' } }));
  assert.deepEqual((JSON.parse(none.toString('utf8')) as { result: StatusResult }).result.sessions, []);
});

/**
 * The plugin server's stop and its socket file: the file goes at once when the server stops
 * accepting, and a stop still waiting for its peers never removes a socket another daemon has
 * bound at that path since (a restart by hand, or a second unit on the same path).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { test } from 'node:test';
import { INJECT, provider, startStack } from '../attach/stack.js';
import { RawClient } from '../helpers/raw-client.js';
import { until, within } from '../helpers/wait.js';

test('a stop waiting for a peer that does not go leaves alone the socket another daemon bound since', async (t) => {
  const s = await startStack(provider(() => INJECT));
  t.after(() => s.close());
  // A peer that never reads nor closes: the stop waits its whole grace for it.
  const peer = await RawClient.open(s.socket);
  t.after(() => peer.destroy());
  await peer.hello('vm-lingering', { minor: 1, caps: 0x13 });
  peer.socket.pause();
  const stopped = s.server.stop(60_000);
  await until('the plugin socket file to go as the server stops accepting', () => !existsSync(s.socket));
  const other = createServer((c) => c.end('other daemon\n'));
  t.after(() => other.close());
  await within(
    'the other daemon to listen',
    new Promise<void>((resolve) => other.listen(s.socket, () => resolve())),
  );
  // The peer goes, and the stop ends.
  peer.destroy();
  await within('the stop to end', stopped);
  assert.ok(existsSync(s.socket), "the other daemon's socket file is still there");
  const reply = await within(
    'an answer from the other daemon',
    new Promise<string>((resolve, reject) => {
      const c = createConnection(s.socket);
      let text = '';
      c.on('data', (d) => {
        text += d;
      });
      c.on('end', () => resolve(text));
      c.on('error', reject);
    }),
  );
  assert.equal(reply, 'other daemon\n');
});

/**
 * The attach socket at the process's open-file limit (RLIMIT_NOFILE, lowered with prlimit(1)):
 * accept4 fails with EMFILE while the connection stays queued and the socket readable. Accepting
 * pauses for ACCEPT_RETRY_MS rather than failing again at every turn of the event loop, and takes
 * the connection once a descriptor is free. A file of its own: every descriptor is taken here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { closeFd, connectSeqpacket } from '../../kvm/index.js';
import { Descriptors, setSoftLimit, softLimit } from '../helpers/descriptors.js';
import { requireTool } from '../helpers/tools.js';
import { until } from '../helpers/wait.js';
import { standInAttachServer } from './stack.js';

test('out of descriptors, accepting pauses instead of failing at every turn, and resumes', async (t) => {
  const prlimit = requireTool(t, 'prlimit', 'util-linux');
  if (!prlimit) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-attach-fds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const notices: string[] = [];
  const attach = standInAttachServer(dir, {
    onNotice: (message) => notices.push(message),
  });
  attach.listen();
  t.after(() => attach.close());
  const limit = softLimit();
  const fds = new Descriptors();
  let client = -1;
  t.after(() => {
    fds.release();
    if (client >= 0) closeFd(client);
  });
  setSoftLimit(prlimit, readdirSync('/proc/self/fd').length + 32);
  try {
    fds.takeAll();
    fds.releaseOne(); // the client's socket: the server's accept4 then has none
    client = connectSeqpacket(attach.address);
    // Two hundred turns of the event loop: each one failed to accept before.
    for (let i = 0; i < 200; i++) await turn();
  } finally {
    fds.release();
    setSoftLimit(prlimit, limit);
  }
  assert.ok(notices.length >= 1 && notices.length <= 3, `${notices.length} notices: ${notices[0]}`);
  assert.match(notices[0] as string, /EMFILE.*accepting again in 250 ms/);
  await until('the queued connection to be accepted', () => attach.connectionCount === 1);
});

/**
 * `seawall daemon` started as the shipped unit starts it — an unprivileged user with CAP_KILL in
 * its ambient set (User=, AmbientCapabilities=) — keeps CAP_KILL for kill enforcement, and its main
 * thread's ambient set is empty once it is ready. Capabilities are per thread: that is the thread
 * that starts the migration hooks (libuv spawns on the event loop), so they do not inherit CAP_KILL;
 * V8's and libuv's threads, started before any JavaScript runs, keep theirs and start nothing.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startDaemon } from '../helpers/daemon.js';
import { requireTool } from '../helpers/tools.js';

const NOBODY = 65534;
const KILL = '0000000000000020';
const NONE = '0000000000000000';

test('the daemon started with CAP_KILL ambient keeps it and hands none on', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to start the daemon as uid 65534 with CAP_KILL');
  if (!requireTool(t, 'setpriv', 'util-linux')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-caps-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chownSync(dir, NOBODY, NOBODY);
  const daemon = await startDaemon({
    dir,
    metrics: false,
    execBy: [
      'setpriv',
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      '--inh-caps=+kill',
      '--ambient-caps=+kill',
    ],
  });
  t.after(() => daemon.kill());
  const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
  const cap = (key: string) => new RegExp(`^${key}:\\s*(\\w+)$`, 'm').exec(status)?.[1];
  assert.match(status, new RegExp(`^Uid:\\s+${NOBODY}\\s`, 'm'), 'running as the unprivileged user');
  assert.deepEqual(
    { CapEff: cap('CapEff'), CapAmb: cap('CapAmb') },
    { CapEff: KILL, CapAmb: NONE },
    daemon.output.join('\n'),
  );
});

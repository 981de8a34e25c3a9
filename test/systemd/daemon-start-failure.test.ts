/**
 * A daemon that cannot start, under a real systemd-journald and a real NOTIFY_SOCKET receiver, at
 * each level a start can fail: the configuration (before the service exists), the store's
 * directory, the policy (store and metrics already up), the plugin socket (the last level). Each
 * time it exits 1 with the reason on stderr; journald holds one DAEMON_START_FAILED entry at
 * priority err with the reason; systemd is told the reason (STATUS=, and ERRNO= for a failed
 * system call) and is sent neither READY=1 nor STOPPING=1, and the journal has no "stopping"
 * entry: a daemon that never became ready does not begin a shutdown. With its log on stderr (a
 * console), the reason is said there once: the log line, which the command does not repeat.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { MessageFields, MessageId } from '../../systemd/index.js';
import { runTool } from '../daemon/e2e/run-cli.js';
import { CLI } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { type JournaldHandle, journaldRequirements, startJournald } from './journald-fixture.js';
import { type NotifyReceiver, startNotifyReceiver } from './notify-fixture.js';
import { requireOrSkip } from './tools.js';

interface Failure {
  /** Extra daemon arguments, given the case's scratch directory. */
  args: (dir: string) => string[];
  /** SEAWALL_REASON of the entry. */
  reason: string;
  /** In the entry's MESSAGE, in STATUS= and on stderr. */
  says: RegExp;
  /** ERRNO= sent with STATUS=, if any. */
  errno?: string;
  /** Makes what the case needs in its directory; returns a cleanup. */
  prepare?: (dir: string) => Promise<() => void>;
}

const CASES: Record<string, Failure> = {
  'the configuration file does not load': {
    args: (dir) => ['--config', join(dir, 'seawall.yaml')],
    reason: 'SEAWALL_DAEMON_CONFIG',
    says: /no_such_key/,
    prepare: async (dir) => {
      writeFileSync(join(dir, 'seawall.yaml'), 'no_such_key: 1\n');
      return () => {};
    },
  },
  'the store directory cannot be made': {
    // A regular file where a directory of the state path should be.
    args: (dir) => ['--state-dir', join(dir, 'file', 'state')],
    reason: 'ENOTDIR',
    says: /ENOTDIR/,
    errno: '20',
    prepare: async (dir) => {
      writeFileSync(join(dir, 'file'), '');
      return () => {};
    },
  },
  'the policy file is invalid': {
    args: (dir) => ['--policy', join(dir, 'policy.yaml')],
    reason: 'SEAWALL_DAEMON_POLICY',
    says: /policy\.yaml is invalid/,
    prepare: async (dir) => {
      writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nrules: 7\n');
      return () => {};
    },
  },
  'another process serves the plugin socket': {
    args: () => [],
    reason: 'SEAWALL_DAEMON_SOCKET_IN_USE',
    says: /already listening/,
    prepare: async (dir) => {
      const squatter = createServer().listen(join(dir, 'plugin.sock'));
      await within('the squatter to listen', new Promise((r) => squatter.once('listening', r)));
      return () => squatter.close();
    },
  },
};

/** The daemon's command line in the case's scratch directory, its log to `log`. */
function daemonArgs(dir: string, log: 'journal' | 'stderr', c: Failure): string[] {
  return [
    CLI,
    'daemon',
    '--socket',
    join(dir, 'plugin.sock'),
    '--control-socket',
    join(dir, 'control.sock'),
    '--state-dir',
    join(dir, 'state'),
    '--metrics',
    '127.0.0.1:0',
    '--log',
    log,
    ...c.args(dir),
  ];
}

/** The case's scratch directory, prepared; removed (and the case cleaned up) after the test. */
async function scratch(t: TestContext, c: Failure): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-nostart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cleanup = (await c.prepare?.(dir)) ?? (() => {});
  t.after(cleanup);
  return dir;
}

async function failToStart(
  t: TestContext,
  journald: JournaldHandle,
  rx: NotifyReceiver,
  c: Failure,
): Promise<void> {
  const args = daemonArgs(await scratch(t, c), 'journal', c);
  // Entries from before the spawn are another process's that had the same PID.
  const sinceUs = Date.now() * 1000;
  const p = spawnOwned(process.execPath, args, {
    env: { ...process.env, ...rx.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => killOwned(p, 'a daemon that cannot start'));
  let stderr = '';
  p.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const pid = String(p.pid);
  const { code, signal } = await within('a daemon that cannot start to exit by itself', exitOf(p));
  assert.deepEqual({ code, signal }, { code: 1, signal: null }, stderr);
  // What a console user reads, unchanged: the command's name and the reason.
  assert.match(stderr, /^seawall daemon: /m);
  assert.match(stderr, c.says);

  const [entry, ...more] = await journald.waitForEntries(
    { _PID: pid, MESSAGE_ID: MessageId.DAEMON_START_FAILED },
    { sinceUs },
  );
  assert.equal(more.length, 0, 'one DAEMON_START_FAILED entry');
  assert.equal(entry?.PRIORITY, '3');
  assert.equal(entry?.SYSLOG_IDENTIFIER, 'seawall');
  assert.equal(entry?.SEAWALL_REASON, c.reason);
  assert.match(entry?.MESSAGE ?? '', /^seawall cannot start: /);
  assert.match(entry?.MESSAGE ?? '', c.says);
  for (const field of MessageFields[MessageId.DAEMON_START_FAILED]) assert.ok(entry?.[field], field);
  // Everything the daemon logged is in by now: nothing of it says it was stopping.
  await journald.barrier();
  const logged = await journald.query({ _PID: pid }, sinceUs);
  assert.deepEqual(
    logged.filter((e) => e.MESSAGE_ID === MessageId.DAEMON_STOPPING || /stopping/.test(e.MESSAGE ?? '')),
    [],
  );

  // Every datagram the daemon sent is in by now.
  await rx.barrier();
  const sent = rx.messages.filter((m) => m.pid === p.pid);
  assert.deepEqual(
    sent.filter((m) => m.fields.READY !== undefined || m.fields.STOPPING !== undefined).map((m) => m.text),
    [],
    'neither READY=1 nor STOPPING=1',
  );
  const status = sent.filter((m) => m.fields.STATUS?.startsWith('cannot start: '));
  assert.equal(status.length, 1, JSON.stringify(sent.map((m) => m.text)));
  assert.match(status[0]!.fields.STATUS!, c.says);
  assert.equal(status[0]!.fields.ERRNO, c.errno);
}

test('a start that fails is a journal entry at priority err and a STATUS=, never READY=1 or STOPPING=1', async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  const rx = await startNotifyReceiver();
  t.after(() => rx.close());
  for (const [name, c] of Object.entries(CASES)) await t.test(name, (t) => failToStart(t, journald, rx, c));
});

test('at a console, with the log on stderr, the reason is said once and the exit is 1', async (t) => {
  for (const [name, c] of Object.entries(CASES)) {
    await t.test(name, async (t) => {
      const args = daemonArgs(await scratch(t, c), 'stderr', c);
      const r = await runTool(process.execPath, args);
      assert.equal(r.code, 1, r.stderr);
      const said = r.stderr.split('\n').filter((l) => c.says.test(l));
      assert.equal(said.length, 1, r.stderr);
      assert.match(said[0] ?? '', /^"?seawall cannot start: /);
      assert.match(said[0] ?? '', new RegExp(`MESSAGE_ID=${MessageId.DAEMON_START_FAILED}`));
      // What a ready daemon announces is said at ready only: a refused start (after its metrics
      // endpoint opened, for the policy) advertised no address or socket it then closed.
      assert.doesNotMatch(`${r.stdout}${r.stderr}`, /metrics: +http|(plugin|control|attach) socket:/);
    });
  }
});

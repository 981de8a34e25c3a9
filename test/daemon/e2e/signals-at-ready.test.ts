/**
 * Signals right after readiness. Once the daemon has said it is ready (its ready line here; READY=1
 * to systemd, sent from the same start-up), SIGTERM must mean a graceful stop (exit 0, sockets
 * removed) and SIGHUP a reload — never the signal's default action, which terminates the process.
 * Each case is tried ten times, signalling the moment the ready line arrives.
 * (The handlers were once installed only after READY=1, and about half of these tries lost.)
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { runCli } from './run-cli.js';

const TRIES = 10;
async function tries(t: test.TestContext, each: (d: RunningDaemon, i: number) => Promise<void>) {
  const daemons: RunningDaemon[] = [];
  t.after(async () => {
    for (const d of daemons) {
      await d.kill();
      removeDir(d.dir);
    }
  });
  for (let i = 0; i < TRIES; i++) {
    const d = await startDaemon({ metrics: false });
    daemons.push(d);
    await each(d, i);
  }
}

test('SIGTERM as soon as the daemon is ready: a graceful stop, every time', async (t) => {
  await tries(t, async (d, i) => {
    const code = await d.stop();
    assert.equal(code, 0, `try ${i + 1}: exit ${code}, signal ${d.proc.signalCode}`);
    assert.ok(!existsSync(d.socket), `try ${i + 1}: the plugin socket was removed`);
  });
});

test('SIGHUP as soon as the daemon is ready: it reloads and keeps serving', async (t) => {
  await tries(t, async (d, i) => {
    d.proc.kill('SIGHUP');
    // Without a handler the kernel ends the process at delivery, before this request is sent.
    const r = await runCli(['status', '--control-socket', d.controlSocket, '--json']);
    assert.equal(r.code, 0, `try ${i + 1}: status after SIGHUP exited ${r.code}: ${r.stderr}`);
    assert.equal(d.proc.signalCode, null);
  });
});

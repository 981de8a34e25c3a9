/**
 * Signals the daemon does not use. Node opens its inspector on 127.0.0.1:9229 at an unhandled
 * SIGUSR1, through which any local user could run code in the daemon (root's); SIGUSR2's default
 * action ends the process, leaving every VM to its fallback. Both are logged and ignored.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';

let d: RunningDaemon;
before(async () => {
  d = await startDaemon({ metrics: false });
});
after(async () => {
  await d?.kill();
  if (d) removeDir(d.dir);
});

/** TCP sockets the process listens on: its socket fds matched against /proc/net/tcp{,6} (state 0A). */
function tcpListeners(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // closed meanwhile
    }
  }
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9] as string)) found.push(f[1] as string);
    }
  }
  return found;
}

test('SIGUSR1 opens no inspector and SIGUSR2 ends nothing: each is logged and ignored', async () => {
  assert.deepEqual(tcpListeners(d.pid), [], 'without metrics the daemon listens on no TCP port');
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
    d.proc.kill(signal);
    await until(`the daemon to say it ignored ${signal}`, () =>
      d.output.some((l) => l.startsWith(`${signal} ignored: seawall does not use it`)),
    );
  }
  assert.equal(d.proc.exitCode, null, 'still running');
  assert.deepEqual(tcpListeners(d.pid), [], 'no inspector port');
  assert.ok(!d.output.some((l) => /Debugger listening/.test(l)), d.output.join('\n'));
});

/**
 * Many raw connections to a daemon with chosen limits, for the connection-bound tests
 * (connections-idle, connections-drip), made by child processes a few at a time. Whatever is
 * opened or started here is closed by `closePeers` in the file's after hook, daemons included,
 * even when a test fails.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { PRE_HELLO_PER_PROCESS } from '../../daemon/pre-hello.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

const sockets: Socket[] = [];
const daemons: RunningDaemon[] = [];
const dirs: string[] = [];
const children: ChildProcess[] = [];

/** For the after hook: every socket, daemon and directory made here. */
export async function closePeers(): Promise<void> {
  for (const s of sockets) s.destroy();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) await killOwned(c);
  for (const d of daemons) {
    await d.kill();
    removeDir(d.dir);
  }
  for (const dir of dirs) removeDir(dir);
}

/** A daemon whose config sets `limits` (YAML flow-mapping entries) beside room for 1,100 sessions. */
export async function daemonWith(limits: string): Promise<RunningDaemon> {
  const dir = mkdtempSync('/tmp/seawall-conn-');
  dirs.push(dir);
  const config = join(dir, 'seawall.yaml');
  writeFileSync(config, `limits: { maxSessions: 1100, ${limits} }\n`);
  const d = await startDaemon({ args: ['--config', config], metrics: false });
  daemons.push(d);
  return d;
}

const HAND_OVER = new URL('./children/connect-and-hand-over.mjs', import.meta.url).pathname;
/** Children connecting at once. */
const SPAWNING = 16;

/**
 * `count` connections made by a child process of their own (connect-and-hand-over.mjs), handed
 * over to this one (null for one the daemon closed first); the child is gone once it has handed
 * them over.
 */
function connectFromChild(path: string, count: number, onSocket: (s: Socket | null) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnOwned(process.execPath, [HAND_OVER, path, String(count)], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    children.push(child);
    let got = 0;
    child.on('message', (m, handle) => {
      if (handle instanceof Socket || m === 'gone') {
        got++;
        onSocket(handle instanceof Socket ? handle : null);
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (got === count) resolve();
      else reject(new Error(`a connecting child handed over ${got} of ${count} (exit ${code ?? signal})`));
    });
  });
}

/**
 * Connects `n` sockets (within 60 s); `closed` resolves as each closes (watched from the start).
 * What the daemon says is read and discarded, so that its closing a connection is seen. The daemon
 * holds at most PRE_HELLO_PER_PROCESS connections of one process before HELLO: the sockets are
 * made that many at a time by child processes, as a peer with many processes would make them.
 */
export function openPeers(path: string, n: number): Promise<{ peers: Socket[]; closed: Promise<void>[] }> {
  const peers: Socket[] = [];
  const closed: Promise<void>[] = [];
  const take = (s: Socket | null) => {
    if (!s) {
      closed.push(Promise.resolve()); // closed by the daemon before it was handed over
      return;
    }
    sockets.push(s);
    s.on('error', () => {}); // a reset as the daemon drops it is expected
    closed.push(new Promise<void>((r) => s.once('close', () => r())));
    s.resume();
    peers.push(s);
  };
  const run = async () => {
    const counts: number[] = [];
    for (let left = n; left > 0; left -= PRE_HELLO_PER_PROCESS)
      counts.push(Math.min(left, PRE_HELLO_PER_PROCESS));
    for (let i = 0; i < counts.length; i += SPAWNING)
      await Promise.all(counts.slice(i, i + SPAWNING).map((c) => connectFromChild(path, c, take)));
    return { peers, closed };
  };
  return within(`${n} connections opened`, run(), { timeoutMs: 60_000 });
}

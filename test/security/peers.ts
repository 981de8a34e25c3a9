/**
 * Many raw connections to a daemon with chosen limits, for the connection-bound tests
 * (connections-idle, connections-drip). Whatever is opened here is closed by `closePeers` in the
 * file's after hook, daemons included, even when a test fails.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { within } from '../helpers/wait.js';

const sockets: Socket[] = [];
const daemons: RunningDaemon[] = [];
const dirs: string[] = [];

/** For the after hook: every socket, daemon and directory made here. */
export async function closePeers(): Promise<void> {
  for (const s of sockets) s.destroy();
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

/** One connection, retried while the daemon's accept backlog is full (EAGAIN on a Unix socket). */
async function connectOne(path: string): Promise<Socket> {
  for (;;) {
    const s = connect(path);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      s.once('connect', () => resolve(null));
      s.once('error', resolve);
    });
    if (err === null) return s;
    s.destroy();
    if (err.code !== 'EAGAIN') throw err;
    await new Promise((r) => setTimeout(r, 10)); // the backlog drains as the daemon accepts
  }
}

/**
 * Connects `n` sockets (within 60 s); `closed` resolves as each closes (watched from the start).
 * What the daemon says is read and discarded, so that its closing a connection is seen.
 */
export function openPeers(path: string, n: number): Promise<{ peers: Socket[]; closed: Promise<void>[] }> {
  const run = async () => {
    const peers: Socket[] = [];
    const closed: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const s = await connectOne(path);
      sockets.push(s);
      s.on('error', () => {}); // a reset as the daemon drops it is expected
      closed.push(new Promise<void>((r) => s.once('close', () => r())));
      s.resume();
      peers.push(s);
    }
    return { peers, closed };
  };
  return within(`${n} connections opened`, run(), { timeoutMs: 60_000 });
}

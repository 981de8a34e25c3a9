/**
 * Socket activation with the real `systemd-socket-activate`. The activator listens, passes fd 3
 * (named `plugin`) and execs a small service manager: a bash loop that runs the daemon and runs
 * it again when it dies, exporting LISTEN_PID as systemd does, so the listening socket stays open
 * across daemon restarts exactly as systemd keeps a .socket unit's socket.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { ACTION } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { seaEvent, seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { CLI, daemonCommand } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned, stopOwned } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';
import { findExecutable } from './tools.js';

const SEA = seaExit({ gpa: 0x5000n });
const HELLO_AS = new URL('../security/children/hello-as.mjs', import.meta.url).pathname;
const ATTACH_AS = new URL('./children/attach-as.mjs', import.meta.url).pathname;
const NOBODY = 65534;
/** A group no user is in, standing for seawall-vmm. */
const VMM_GID = 65533;
const IMAGE = `000001${'0'.repeat(122)}`;

/** Gives a socket the shipped units' SocketGroup=seawall-vmm (standing for it: VMM_GID) and SocketMode=0660. */
function vmmSocket(path: string): void {
  chownSync(path, 0, VMM_GID);
  chmodSync(path, 0o660);
}

/** Runs a child script as a VMM of that group only (uid nobody) and returns what it printed. */
async function vmmPeer(t: TestContext, args: string[]): Promise<string> {
  const peer = spawnOwned(process.execPath, args, {
    uid: NOBODY,
    gid: VMM_GID,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(peer, 'the peer'));
  let answer = '';
  peer.stdout?.on('data', (c) => {
    answer += c;
  });
  await within('the peer to exit', exitOf(peer));
  return answer.trim();
}

/** The daemon process currently run by the activator's loop (its only child). */
function daemonPid(managerPid: number): number | null {
  const path = `/proc/${managerPid}/task/${managerPid}/children`;
  if (!existsSync(path)) return null;
  const pid = Number(readFileSync(path, 'utf8').trim().split(/\s+/)[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

test('the daemon serves the activated socket, and a plugin connecting during a restart is answered', async (t) => {
  if (!requireTool(t, 'systemd-socket-activate', 'systemd')) return;
  if (!requireTool(t, 'bash', 'bash')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sa-'));
  const sock = join(dir, 'plugin.sock');
  const stop = join(dir, 'stop');
  const daemon = [
    process.execPath,
    CLI,
    'daemon',
    '--log',
    'stderr',
    '--no-metrics',
    '--control-socket',
    join(dir, 'control.sock'),
    '--state-dir',
    join(dir, 'state'),
  ]
    .map((a) => `'${a}'`)
    .join(' ');
  const loop = `while :; do (export LISTEN_PID=$BASHPID; exec ${daemon}); [ -e '${stop}' ] && exit 0; done`;
  const activator: ChildProcess = spawnOwned(
    'systemd-socket-activate',
    ['-l', sock, '--fdname=plugin', 'bash', '-c', loop],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: '' },
    },
  );
  const lines: string[] = [];
  const readyCount = () => lines.filter((l) => l.startsWith('seawall daemon ready')).length;
  const said = () => `activator and daemon said:\n${lines.join('\n')}`;
  createInterface({ input: activator.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: activator.stderr! }).on('line', (l) => lines.push(l));
  t.after(async () => {
    // The activator, its bash loop and the daemon share the activator's process group.
    writeFileSync(stop, '');
    await killOwned(activator, 'systemd-socket-activate and its daemon');
    rmSync(dir, { recursive: true, force: true });
  });
  await until('the activator to listen', () => lines.some((l) => l.startsWith('Listening on')), {
    state: said,
  });

  // The first connection makes the activator exec the manager, which starts the daemon on fd 3.
  const client = new PluginClient({
    socket: sock,
    vmId: 'sa-vm',
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    deadlineMs: 10_000,
  });
  await client.connect().catch((err: Error) => {
    throw new Error(`${err.message}; activator and daemon said:\n${lines.join('\n')}`);
  });
  const first = await client.handleExit(SEA);
  assert.equal(first.source, 'daemon');
  assert.equal(first.verdict.action, ACTION.INJECT);
  assert.ok(lines.includes(`plugin socket: ${sock} (fd 3, socket activation)`), said());
  // No --socket given: no configured path to tell of.
  assert.equal(lines.filter((l) => l.includes('is not used: socket activation')).length, 0, said());
  await client.close();

  // Kill the daemon and connect while no daemon runs: the held socket queues the connection.
  const managerPid = activator.pid as number;
  const pid = daemonPid(managerPid);
  assert.ok(pid, 'the daemon runs as the manager loop child');
  const readyBefore = readyCount();
  process.kill(pid, 'SIGKILL');
  await until(`the manager loop to notice that daemon ${pid} died`, () => daemonPid(managerPid) !== pid, {
    state: said,
  });
  const raw = await RawClient.open(sock); // rejects on ECONNREFUSED: the test would fail here
  raw.send({
    type: 'hello',
    version: 1,
    caps: DEFAULT_CAPS,
    vmmPid: process.pid,
    vcpuCount: 1,
    extAbtEsrCap: 0,
    vmId: 'sa-vm-during-restart',
    labels: {},
  });
  raw.send(seaEvent(7, SEA));
  const verdict = await raw.waitFor('verdict', (m) => m.seq === 7);
  assert.equal(Buffer.from(verdict.vcpuEvents).toString('hex'), IMAGE);
  assert.ok(readyCount() > readyBefore, 'answered by the restarted daemon');
  raw.destroy();
});

/**
 * Runs the daemon under systemd-socket-activate with `listen` (its -l and --fdname options), makes
 * the first connection with `connectFirst` (which execs the daemon on the passed fds), and returns
 * what was said once the daemon has refused to start (exit 1).
 */
async function refusedAtStart(
  t: TestContext,
  args: string[],
  listen: string[],
  connectFirst: () => () => unknown,
): Promise<string> {
  const activator = spawnOwned('systemd-socket-activate', [...listen, process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NOTIFY_SOCKET: '' },
  });
  t.after(() => killOwned(activator, 'systemd-socket-activate and its daemon'));
  const lines: string[] = [];
  createInterface({ input: activator.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: activator.stderr! }).on('line', (l) => lines.push(l));
  const exited = exitOf(activator);
  const sockets = listen.filter((a) => a === '-l').length;
  await until(
    'the activator to listen',
    () => lines.filter((l) => l.startsWith('Listening on')).length === sockets,
  );
  t.after(connectFirst());
  const exit = await within('the daemon to refuse', exited, { state: () => lines.join('\n') });
  assert.deepEqual(exit, { code: 1, signal: null }, lines.join('\n'));
  return lines.join('\n');
}

test('passed sockets the daemon would not serve are refused at start, each named', async (t) => {
  if (!requireTool(t, 'systemd-socket-activate', 'systemd')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sa-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Two sockets without --fdname: neither can be told to be the plugin's, and left unserved they
  // would take connections nobody answers while the daemon bound its configured paths.
  const { args, socket } = daemonCommand(dir, ['--no-metrics']);
  const said = await refusedAtStart(t, args, ['-l', join(dir, 'a.sock'), '-l', join(dir, 'b.sock')], () => {
    // The first connection execs the daemon on fds 3 and 4.
    const trigger = connect(join(dir, 'a.sock'));
    trigger.on('error', () => {});
    return () => trigger.destroy();
  });
  assert.match(said, /passed fd 3 \(unknown\), fd 4 \(unknown\) not used/);
  assert.equal(existsSync(socket), false, 'nothing bound at the configured path');
});

test('a passed socket bound to no path is refused at start: no file mode would keep anyone out', async (t) => {
  if (!requireTool(t, 'systemd-socket-activate', 'systemd')) return;
  if (!requireTool(t, 'python3', 'python3')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sa-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { args } = daemonCommand(dir, ['--no-metrics']);
  const abstract = `seawall-test-${process.pid}-control`;
  const said = await refusedAtStart(t, args, ['-l', `@${abstract}`, '--fdname=control'], () => {
    // Any local user could make that connection. (Node's net does not reach abstract addresses.)
    const trigger = spawnOwned(
      'python3',
      [
        '-c',
        `import socket,time; s=socket.socket(socket.AF_UNIX); s.connect('\\0${abstract}'); time.sleep(60)`,
      ],
      { stdio: 'ignore' },
    );
    return () => killOwned(trigger, 'the connecting process');
  });
  assert.match(said, /passed fd 3 \(control\) is bound to no path/);
});

test('under activation the socket file’s group is admitted, and the hints and attach socket follow the activated socket', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a peer as another uid');
  if (!requireTool(t, 'systemd-socket-activate', 'systemd')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sa-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The configured --socket (plugin.sock) is not the one systemd listens on.
  const { args, socket, controlSocket } = daemonCommand(dir, ['--no-metrics']);
  const sock = join(dir, 'activated.sock');
  const activator = spawnOwned(
    'systemd-socket-activate',
    ['-l', sock, '--fdname=plugin', process.execPath, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: '' },
    },
  );
  t.after(() => killOwned(activator, 'systemd-socket-activate and its daemon'));
  const lines: string[] = [];
  const said = () => `activator and daemon said:\n${lines.join('\n')}`;
  createInterface({ input: activator.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: activator.stderr! }).on('line', (l) => lines.push(l));
  await until('the activator to listen', () => lines.some((l) => l.startsWith('Listening on')), {
    state: said,
  });
  // SocketGroup=seawall-vmm, SocketMode=0660 as the shipped unit has them: a VMM of that group,
  // under a uid that `allow` does not name, is admitted by the group alone.
  vmmSocket(sock);
  assert.equal(await vmmPeer(t, [HELLO_AS, sock, 'vmm-group-vm']), 'welcome', said());
  await until('the hints', () => lines.some((l) => l.startsWith('look:')), { state: said });
  assert.ok(lines.includes(`plugin socket: ${sock} (fd 3, socket activation)`), said());
  // The --socket given is not the one served, and the start says so, naming both.
  assert.ok(
    lines.includes(
      `plugin socket: the configured ${socket} is not used: socket activation passed ${sock} (fd 3), which is served`,
    ),
    said(),
  );
  assert.equal(lines.filter((l) => l.includes('is not used: socket activation')).length, 1, said());
  assert.ok(
    lines.some((l) => l.startsWith('feed it: ') && l.includes(` --socket ${sock} `)),
    said(),
  );
  assert.ok(
    lines.some((l) => l.startsWith('look: ') && l.endsWith(` --control-socket ${controlSocket}`)),
    said(),
  );
  assert.equal(existsSync(socket), false, 'nothing bound at the configured path');
  // The attach socket beside the socket plugins connect to, where they look for it.
  assert.ok(lines.includes(`attach socket: ${join(dir, 'activated-attach.sock')}`), said());
});

test('the attach socket a unit passes is served: a VMM of the socket’s group attaches, and the socket outlives the daemon', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a peer as another uid');
  if (!requireTool(t, 'systemd-socket-activate', 'systemd')) return;
  const activate = findExecutable('systemd-socket-activate') as string;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-sa-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'seawall.yaml');
  // An attach socket configured elsewhere than the unit's: the unit's is served, and that is told.
  const configured = join(dir, 'configured-attach.sock');
  writeFileSync(config, `attach:\n  allowStandIns: true\n  socket: ${configured}\n`);
  const { args } = daemonCommand(dir, ['--no-metrics', '--config', config]);
  const plugin = join(dir, 'plugin.sock');
  const control = join(dir, 'control.sock');
  const attach = join(dir, 'attach.sock');
  // As systemd passes the three units' sockets: one activator listens on the two stream sockets and
  // execs another, which passes them on and adds the SOCK_SEQPACKET one (a single activator listens
  // on one kind only), then execs the daemon, all in one process.
  const daemon = spawnOwned(
    activate,
    [
      ...['-l', plugin, '-l', control, '--fdname=plugin:control'],
      ...[activate, '--seqpacket', '-l', attach, '--fdname=plugin:control:attach'],
      ...[process.execPath, ...args],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } },
  );
  t.after(() => killOwned(daemon, 'the activators’ daemon'));
  const lines: string[] = [];
  const said = () => `activators and daemon said:\n${lines.join('\n')}`;
  createInterface({ input: daemon.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: daemon.stderr! }).on('line', (l) => lines.push(l));
  await until(
    'the activator to listen',
    () => lines.filter((l) => l.startsWith('Listening on')).length === 2,
    {
      state: said,
    },
  );
  // SocketGroup=seawall-vmm, SocketMode=0660 as the shipped units have them: a VMM that is only in
  // that group reaches both sockets, and the daemon admits its attach as the session's own process.
  // The plugin socket's before the daemon starts, which admits the group it finds then.
  vmmSocket(plugin);
  const trigger = connect(plugin);
  trigger.on('error', () => {});
  t.after(() => trigger.destroy());
  await until('the daemon to be ready', () => lines.some((l) => l.startsWith('seawall daemon ready')), {
    state: said,
  });
  assert.ok(lines.includes(`attach socket: ${attach} (fd 5, socket activation)`), said());
  // Plugin and control passed where --socket and --control-socket name: nothing to tell of them.
  assert.deepEqual(
    lines.filter((l) => l.includes('is not used: socket activation')),
    [
      `attach socket: the configured ${configured} is not used: socket activation passed ${attach} (fd 5), which is served`,
    ],
    said(),
  );
  assert.equal(existsSync(configured), false, 'nothing bound at the configured attach path');
  // Passed blocking, as systemd passes sockets: served non-blocking, or an accept with nothing
  // waiting would hold the event loop.
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${daemon.pid}/fdinfo/5`, 'utf8'))?.[1];
  assert.ok(flags !== undefined && (Number.parseInt(flags, 8) & 0o4000) !== 0, `fd 5 flags ${flags}`);
  vmmSocket(attach);
  assert.equal(await vmmPeer(t, [ATTACH_AS, plugin, attach, 'vmm-group-attach']), 'attached', said());
  // A graceful stop leaves the unit's socket where it is, for the next start's plugins.
  assert.deepEqual(await stopOwned(daemon, 'the daemon'), { code: 0, signal: null }, said());
  assert.ok(existsSync(attach), 'the passed attach socket is still there');
});

/**
 * A fresh clone, installed by following only the README's "Install as a systemd service" steps,
 * as root, under a scratch root (DESTDIR), then run as the units say:
 *
 * - the clone is made from the working tree's files (git ls-files), its node_modules linked to
 *   this checkout's (the `npm ci` step needs the registry; CI ran it moments before);
 * - after install the clone is deleted: the installed copy must not need it (ProtectHome= hides
 *   a home directory from the service, so a link into a checkout would break the unit);
 * - the steps that need a running systemd manager (daemon-reload, enable --now) are carried out
 *   by hand: `systemctl --root` enables the units, and in a private mount and network namespace
 *   the scratch root is laid over /usr, /etc/seawall, /var/lib and /run, so the installed units
 *   are checked by the real `systemd-analyze verify` (any output fails: it only warns on bad
 *   keys) and the service's ExecStart= runs word for word, with the sockets of the .socket units
 *   passed by systemd-socket-activate under their FileDescriptorName=s;
 * - `seawall status` with no flag must find that daemon.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireOrSkip, tools } from '../systemd/tools.js';

const run = promisify(execFile);
const REPO = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');

/** The README's install block, exactly; the test below carries out each line. */
const README_STEPS = [
  'npm ci && npm run build',
  'scripts/install.sh',
  'systemd-sysusers && systemd-tmpfiles --create && journalctl --update-catalog',
  'systemctl daemon-reload && systemctl enable --now seawall.socket seawall-control.socket seawall-attach.socket seawall.service',
  'seawall status',
];

function readmeInstallBlock(): string[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Install as a systemd service'));
  const m = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'the install section has a sh block');
  return (m[1] as string).trim().split('\n');
}

/** A unit file's value of `key` (first occurrence). */
function unitValue(text: string, key: string): string {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(text);
  assert.ok(m, `${key}= is set`);
  return m[1] as string;
}

function sh(
  cmd: string,
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ stdout: string; stderr: string }> {
  return run('sh', ['-c', cmd], { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
}

test('from a fresh clone, the README install starts the daemon with the shipped config and seawall status answers with no flags', async (t) => {
  const need = {
    ...tools({
      'systemd-analyze': 'systemd',
      'systemd-sysusers': 'systemd',
      'systemd-tmpfiles': 'systemd',
      'systemd-socket-activate': 'systemd',
      systemctl: 'systemd',
      unshare: 'util-linux',
      nsenter: 'util-linux',
      git: 'git',
    }),
    'root (mount namespaces, an install under /usr)': process.getuid?.() === 0,
  };
  if (!requireOrSkip(t, need)) return;
  assert.deepEqual(readmeInstallBlock(), README_STEPS, 'the README install block is the one tested here');

  const scratch = mkdtempSync(join(tmpdir(), 'seawall-install-'));
  let daemon: ChildProcess | null = null;
  t.after(async () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const gone = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGKILL');
      await gone;
    }
    rmSync(scratch, { recursive: true, force: true });
  });
  const clone = join(scratch, 'clone');
  const root = join(scratch, 'root');
  mkdirSync(root);

  // The fresh clone: every file git knows of (committed or not), nothing built.
  const files = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], {
    cwd: REPO,
    encoding: 'utf8',
  })
    .stdout.split('\0')
    .filter((f) => f !== '' && existsSync(join(REPO, f)));
  for (const f of files) {
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    cpSync(join(REPO, f), join(clone, f));
  }
  assert.ok(!existsSync(join(clone, 'dist')), 'nothing built in the clone');
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(clone, 'node_modules'));

  // 1. npm ci && npm run build — npm ci is the linked node_modules.
  await sh('npm run build', clone);
  // 2. scripts/install.sh
  const installed = await sh('scripts/install.sh', clone, { DESTDIR: root });
  assert.match(installed.stdout, /configuration: .*\/etc\/seawall\/seawall\.yaml/);
  rmSync(clone, { recursive: true, force: true });
  // 3. users, directories, catalog.
  await run('systemd-sysusers', [`--root=${root}`]);
  await run('systemd-tmpfiles', [`--root=${root}`, '--create']);
  await run('journalctl', [`--root=${root}`, '--update-catalog']);
  // 4. enable (daemon-reload and --now need a running manager: done below by hand).
  await run('systemctl', [
    `--root=${root}`,
    'enable',
    'seawall.socket',
    'seawall-control.socket',
    'seawall-attach.socket',
    'seawall.service',
  ]);
  for (const unit of ['seawall.socket', 'seawall-control.socket', 'seawall-attach.socket'])
    assert.ok(
      lstatSync(join(root, `etc/systemd/system/sockets.target.wants/${unit}`)).isSymbolicLink(),
      unit,
    );

  const units = join(root, 'usr/lib/systemd/system');
  const service = readFileSync(join(units, 'seawall.service'), 'utf8');
  const execStart = unitValue(service, 'ExecStart');
  // User=/Group= as systemd applies them: the ids sysusers gave the names in the scratch root.
  const user = unitValue(service, 'User');
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  const ids = new RegExp(`^${user}:x:(\\d+):(\\d+):`, 'm').exec(passwd);
  assert.ok(ids, `sysusers created ${user}`);
  assert.equal(execStart, '/usr/bin/seawall daemon --config /etc/seawall/seawall.yaml');
  const sockets = ['seawall.socket', 'seawall-control.socket'].map((u) => {
    const text = readFileSync(join(units, u), 'utf8');
    return { listen: unitValue(text, 'ListenStream'), name: unitValue(text, 'FileDescriptorName') };
  });
  const attachUnit = readFileSync(join(units, 'seawall-attach.socket'), 'utf8');
  const attach = {
    listen: unitValue(attachUnit, 'ListenSequentialPacket'),
    name: unitValue(attachUnit, 'FileDescriptorName'),
  };

  // The scratch root over the real paths, in a namespace of its own.
  const etc = join(scratch, 'etc-layer');
  mkdirSync(etc);
  cpSync(join(root, 'etc/seawall'), join(etc, 'seawall'), { recursive: true });
  mkdirSync(join(scratch, 'var-work'));
  const layers = [
    `mount -t overlay overlay -o lowerdir=${root}/usr:/usr /usr`,
    `mount -t overlay overlay -o lowerdir=${etc}:/etc /etc`,
    `mount -t overlay overlay -o lowerdir=/var/lib,upperdir=${root}/var/lib,workdir=${scratch}/var-work /var/lib`,
    `mount --bind ${root}/run /run`,
    'ip link set lo up',
  ].join(' && ');
  const verify = spawnSync(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `${layers} && cd /usr/lib/systemd/system && systemd-analyze verify seawall.service seawall.socket seawall-control.socket seawall-attach.socket 2>&1`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  assert.equal(verify.stdout + verify.stderr, '', 'systemd-analyze verify prints nothing');

  // The service as systemd would run it: its sockets by name, its directories in the environment.
  // One activator listens on the stream sockets and execs another, which passes them on and adds
  // the SOCK_SEQPACKET attach socket (an activator listens on one kind only).
  const environment = [
    'RUNTIME_DIRECTORY=/run/seawall',
    'STATE_DIRECTORY=/var/lib/seawall',
    'CONFIGURATION_DIRECTORY=/etc/seawall',
    `PATH=${process.env.PATH}`,
  ];
  const names = [...sockets, attach].map((s) => s.name).join(':');
  const activate = [
    'systemd-socket-activate',
    ...sockets.flatMap((s) => ['-l', s.listen]),
    `--fdname=${names}`,
    ...environment.flatMap((e) => ['-E', e]),
    'systemd-socket-activate --seqpacket',
    `-l ${attach.listen}`,
    `--fdname=${names}`,
    ...environment.flatMap((e) => ['-E', e.replace(/=.*/, '')]),
    `setpriv --reuid=${ids[1]} --regid=${ids[2]} --clear-groups --`,
    execStart,
  ].join(' ');
  daemon = spawn(
    'unshare',
    ['--mount', '--net', '--propagation', 'private', 'sh', '-c', `${layers} && exec ${activate}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    },
  );
  // systemd-socket-activate, like systemd, starts the service on the first connection: wait
  // until it listens, then let `seawall status` be that connection.
  const output: string[] = [];
  createInterface({ input: daemon.stdout as NodeJS.ReadableStream }).on('line', (l) => output.push(l));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: daemon?.stderr as NodeJS.ReadableStream }).on('line', (l) => {
      output.push(l);
      if (l.startsWith(`Listening on ${sockets[1]?.listen}`)) resolve();
    });
    daemon?.once('exit', (code) => reject(new Error(`the service exited (${code}):\n${output.join('\n')}`)));
  });

  // 5. seawall status — no flag, no environment: it finds /run/seawall/control.sock.
  const status = await run(
    'nsenter',
    [
      `--target=${daemon.pid}`,
      '--mount',
      '--net',
      '--',
      'env',
      '-i',
      `PATH=${process.env.PATH}`,
      'seawall',
      'status',
    ],
    { encoding: 'utf8' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nthe service said:\n${output.join('\n')}`);
  });
  assert.match(status.stdout, /^seawall \d+\.\d+\.\d+, pid \d+, up /);
  assert.match(status.stdout, /store {5}\/var\/lib\/seawall\/events\.sqlite/);
  assert.ok(
    output.some((l) => /^plugin socket: \/run\/seawall\/plugin\.sock \(fd \d+, socket activation\)$/.test(l)),
    output.join('\n'),
  );
  assert.ok(
    output.some((l) =>
      /^control socket: \/run\/seawall\/control\.sock \(fd \d+, socket activation\)$/.test(l),
    ),
    output.join('\n'),
  );
  assert.ok(
    output.includes('attach socket: /run/seawall/attach.sock (fd 5, socket activation)'),
    output.join('\n'),
  );
});

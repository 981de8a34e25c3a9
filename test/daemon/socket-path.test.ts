/**
 * Socket paths longer than a Unix socket's address holds (107 bytes). Node binds and connects to
 * such a path cut short: the daemon made its plugin socket — as root — at the cut path, outside
 * the directory it was given, and then failed on a chmod of the path it was given (ENOENT). Now it
 * refuses the path before making anything, and the CLI says why instead of "no daemon listening".
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { checkSocketPath, SOCKET_PATH_MAX } from '../../kvm/index.js';
import { runCli } from './e2e/run-cli.js';

test('a socket path of 107 bytes is one; 108 is refused with its length', () => {
  const at = (n: number) => `/${'s'.repeat(n - 1)}`;
  assert.doesNotThrow(() => checkSocketPath(at(SOCKET_PATH_MAX), 'bind'));
  assert.throws(() => checkSocketPath(at(SOCKET_PATH_MAX + 1), 'connect'), /is 108 bytes; .* at most 107/);
  // Bytes, not characters: 36 three-byte characters are 108 bytes.
  assert.throws(() => checkSocketPath('€'.repeat(36), 'bind'), /is 108 bytes/);
  assert.throws(() => checkSocketPath('', 'bind'), /cannot be empty/);
});

test('the daemon refuses a socket path too long for a socket, and makes nothing', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'seawall-sock-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  // Cut at 107 bytes, a long path names a file directly in `base`.
  const long = join(base, 'd'.repeat(120));
  // 107 bytes exactly: the plugin socket fits, `p-attach.sock` beside it does not.
  const fits = join(base, 'e'.repeat(107 - base.length - 'p.sock'.length - 2), 'p.sock');
  assert.equal(Buffer.byteLength(fits), 107);
  // Each refusal names the socket, where its path came from, and the setting that changes it.
  const cases = [
    [
      'plugin socket',
      join(long, 'plugin.sock'),
      join(base, 'c.sock'),
      join(long, 'plugin.sock'),
      'socket \\(--socket\\)',
    ],
    [
      'control socket',
      join(base, 'plugin.sock'),
      join(long, 'control.sock'),
      join(long, 'control.sock'),
      'controlSocket \\(--control-socket\\)',
    ],
    [
      'attach socket \\(named after the plugin socket\\)',
      fits,
      join(base, 'c.sock'),
      join(dirname(fits), 'p-attach.sock'),
      'attach\\.socket \\(or a shorter plugin socket path\\)',
    ],
  ] as const;
  for (const [which, socket, control, refused, setting] of cases) {
    const state = join(base, 'state');
    const r = await runCli([
      'daemon',
      '--socket',
      socket,
      '--control-socket',
      control,
      '--state-dir',
      state,
      '--no-metrics',
      '--log',
      'stderr',
    ]);
    assert.equal(r.code, 1, `${which}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(
        `the ${which} path ${refused} is ${Buffer.byteLength(refused)} bytes, more than the 107 .*; set ${setting}`,
      ),
      `${which}: the socket, its path and length, the setting`,
    );
    assert.match(r.stderr, /SEAWALL_REASON=SEAWALL_DAEMON_CONFIG/, `${which}: the configuration's fault`);
    // Refused before the store: no state directory, no socket file at a cut path, no socket directory.
    assert.deepEqual(readdirSync(base), [], `${which}: nothing made`);
  }
});

test('status and simulate name a control or plugin socket path too long, rather than no daemon', async () => {
  const long = join(tmpdir(), 'x'.repeat(120), 'control.sock');
  const status = await runCli(['status', '--control-socket', long]);
  assert.equal(status.code, 1);
  assert.match(status.stderr, /is \d+ bytes; a Unix socket's path holds at most 107/);
  const sim = await runCli(['simulate', '--socket', long, '--events', '1']);
  assert.equal(sim.code, 1);
  assert.match(sim.stderr, /is \d+ bytes; a Unix socket's path holds at most 107/);
});

test('a socket path naming a file that is not a socket: the daemon refuses it and leaves the file', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'seawall-sock-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  // connect(2) to a regular file fails as to a dead socket: the stale-socket clean-up once deleted it.
  const daemon = (dir: string, control: string) => [
    'daemon',
    '--socket',
    join(dir, 'plugin.sock'),
    '--control-socket',
    control,
    '--state-dir',
    join(base, 'state'),
    '--no-metrics',
    '--log',
    'stderr',
  ];
  // The attach socket is `attach.sock` beside the plugin socket.
  const cases = [
    ['plugin', 'plugin.sock', (dir: string) => daemon(dir, join(dir, 'c.sock'))],
    ['control', 'c.sock', (dir: string) => daemon(dir, join(dir, 'c.sock'))],
    ['attach', 'attach.sock', (dir: string) => daemon(dir, join(dir, 'c.sock'))],
  ] as const;
  for (const [which, name, argv] of cases) {
    const dir = join(base, which);
    mkdirSync(dir);
    const path = join(dir, name);
    writeFileSync(path, `${which} keeps its bytes\n`);
    const r = await runCli(argv(dir));
    assert.equal(r.code, 1, `${which}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${path} exists and is not a socket`), which);
    assert.equal(readFileSync(path, 'utf8'), `${which} keeps its bytes\n`, `${which}: the file is intact`);
  }
});

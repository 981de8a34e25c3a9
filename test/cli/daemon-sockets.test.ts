/**
 * The daemon search trusts a socket only where no one but root or its owner could have put it: a
 * `seawall-0` runtime directory another user made in a world-writable place, or one writable by
 * everyone, is refused with its path and owner, and the planted server is never asked anything.
 * Tests run as root (chown needs it).
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../cli/cli.js';
import { findSocket, SOCKET_ENV, socketCandidates } from '../../cli/daemon-sockets.js';
import { buildProgram, walkCommands } from '../../cli/program.js';
import { within } from '../helpers/wait.js';

const root = process.getuid?.() === 0;

/** A server that answers every request with a forged "the new policy is live", counting requests. */
async function plant(path: string): Promise<{ requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((sock) => {
    sock.on('error', () => {});
    sock.on('data', () => {
      requests++;
      sock.end(
        `${JSON.stringify({ id: 1, ok: true, result: { ok: true, version: 'forged', issues: [] } })}\n`,
      );
    });
  });
  await within('the planted server to listen', new Promise<void>((r) => server.listen(path, r)));
  return {
    requests: () => requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function reload(env: NodeJS.ProcessEnv) {
  let out = '';
  let err = '';
  const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
  const status = await main(['reload'], io, { env });
  return { status, out, err };
}

/** A base directory like /tmp (root's, world-writable, sticky) holding `seawall/` as the runtime dir. */
function layout(t: { after: (fn: () => void) => void }, baseMode: number) {
  const base = mkdtempSync(join(tmpdir(), 'seawall-search-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, baseMode);
  const dir = join(base, 'seawall');
  mkdirSync(dir, { mode: 0o755 });
  return { base, dir, socket: join(dir, 'control.sock'), env: { XDG_RUNTIME_DIR: base } };
}

test('a runtime directory another user made where anyone may is refused, naming it and its owner', {
  skip: !root,
}, async (t) => {
  const l = layout(t, 0o1777);
  const fake = await plant(l.socket);
  t.after(() => fake.close());
  chownSync(l.dir, 65534, 65534);
  const r = await reload(l.env);
  assert.equal(r.status, 1);
  assert.equal(r.out, '');
  assert.match(
    r.err,
    new RegExp(
      `refusing the control socket ${l.socket}: its directory ${l.dir} is owned by uid 65534, not by root or uid 0`,
    ),
  );
  assert.match(r.err, /--control-socket PATH/);
  assert.doesNotMatch(r.err, /forged/);
  assert.equal(fake.requests(), 0, 'the planted server was never asked');
});

test('a runtime directory writable by everyone, without the sticky bit, is refused even if root owns it', {
  skip: !root,
}, async (t) => {
  const l = layout(t, 0o755);
  const fake = await plant(l.socket);
  t.after(() => fake.close());
  chmodSync(l.dir, 0o777);
  const r = await reload(l.env);
  assert.equal(r.status, 1);
  assert.match(r.err, new RegExp(`its directory ${l.dir} is writable by everyone \\(mode 777\\)`));
  assert.equal(fake.requests(), 0);
  // A directory above that others may write to, not sticky, is refused too.
  chmodSync(l.dir, 0o755);
  chmodSync(l.base, 0o777);
  const above = await reload(l.env);
  assert.equal(above.status, 1);
  assert.match(
    above.err,
    new RegExp(`${l.base}, a directory above it, is writable by everyone and not sticky`),
  );
  assert.equal(fake.requests(), 0);
});

test('root’s own directory, or one root handed to the daemon’s user, is used', { skip: !root }, async (t) => {
  const l = layout(t, 0o755);
  const fake = await plant(l.socket);
  t.after(() => fake.close());
  const mine = await reload(l.env);
  assert.equal(mine.status, 0, mine.err);
  assert.match(mine.out, /policy forged is live/);
  // /run/seawall under systemd: the daemon's user owns it, in a directory only root can write.
  chownSync(l.dir, 65534, 65534);
  const handed = await reload(l.env);
  assert.equal(handed.status, 0, handed.err);
  assert.equal(fake.requests(), 2);
  // Found through a symlink, the socket is named by its resolved path.
  const link = join(l.base, 'link');
  symlinkSync(l.base, link);
  assert.equal(findSocket('control', undefined, { XDG_RUNTIME_DIR: link }), l.socket);
});

test('the socket options’ help names every place the search tries, the /tmp fallback included', () => {
  const program = buildProgram({
    io: { out: () => {}, err: () => {} },
    env: {},
    now: Date.now,
    exit: () => {},
  });
  const uid = String(process.getuid?.() ?? 'user');
  let checked = 0;
  for (const { path, command } of walkCommands(program)) {
    for (const [flag, kind] of [
      ['--control-socket', 'control'],
      ['--socket', 'plugin'],
    ] as const) {
      const option = command.options.find((o) => o.long === flag);
      // The daemon's own --socket is where it listens, not a search.
      if (!option || path[0] === 'daemon') continue;
      const help = option.description
        .replaceAll('<uid>', uid)
        .replaceAll('/tmp/', `${tmpdir()}/`)
        .replaceAll('$XDG_RUNTIME_DIR', '/xdg');
      for (const env of [{}, { XDG_RUNTIME_DIR: '/xdg' }])
        for (const candidate of socketCandidates(kind, env))
          assert.ok(help.includes(candidate), `${path.join(' ')} ${flag}: ${candidate} in “${help}”`);
      assert.ok(
        help.includes(`$${SOCKET_ENV[kind]}`),
        `${path.join(' ')} ${flag} names $${SOCKET_ENV[kind]}`,
      );
      checked++;
    }
  }
  // status, vms, events, poison, why, reload and simulate.
  assert.ok(checked >= 7, `${checked} options checked`);
});

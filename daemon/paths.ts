/**
 * Where the daemon keeps its sockets and state when nothing says otherwise. Under systemd the
 * unit's RuntimeDirectory=/StateDirectory= arrive as $RUNTIME_DIRECTORY / $STATE_DIRECTORY; a user
 * running it by hand gets $XDG_RUNTIME_DIR and $XDG_STATE_HOME, so no root is needed. Whichever
 * applies, the daemon uses a directory only after `ensureSafeDir` has vouched for it.
 */
import { lstatSync, mkdirSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { DaemonError } from './errors.js';

export function defaultRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (systemd) return systemd;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'seawall');
  return join(tmpdir(), `seawall-${process.getuid?.() ?? 'user'}`);
}

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  if (systemd) return systemd;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'seawall');
  return join(homedir(), '.local', 'state', 'seawall');
}

export const defaultPluginSocket = (env: NodeJS.ProcessEnv = process.env): string =>
  join(defaultRuntimeDir(env), 'plugin.sock');
export const defaultControlSocket = (env: NodeJS.ProcessEnv = process.env): string =>
  join(defaultRuntimeDir(env), 'control.sock');

/**
 * Makes sure `dir` is a directory only this daemon (and root) can change, creating what is
 * missing; throws DaemonError SEAWALL_DAEMON_UNSAFE_PATH, with what is wrong and how to fix it,
 * otherwise. The sockets and the event store live in it: whoever can rename or replace entries
 * there can swap the control socket under `seawall reload`, or the plugin socket under a VMM.
 *
 * - `dir` itself: not a symlink, owned by the daemon's uid, not writable by group or others;
 * - every directory above it (symlinks resolved, e.g. /var/run → /run): owned by root or the
 *   daemon's uid, and not writable by group or others unless sticky (/tmp), where only an
 *   entry's owner may rename or remove it;
 * - a missing component is created with `mode` (never wider than 0755) and checked like an
 *   existing one, so a directory someone else creates in the meantime is refused as well;
 * - `allowSticky` (socket directories only) also accepts a root-owned sticky `dir` such as /tmp.
 */
export function ensureSafeDir(dir: string, mode = 0o700, opts: { allowSticky?: boolean } = {}): void {
  const uid = process.geteuid?.() ?? 0;
  const target = resolve(dir);
  const missing: string[] = [];
  let existing = target;
  while (!lstatIfExists(existing)) {
    missing.unshift(existing);
    const up = dirname(existing);
    if (up === existing) break;
    existing = up;
  }
  checkSymlinks(existing, uid);
  // Ancestors: after resolving symlinks, each must be root's or ours and not open to others.
  const real = realpathSync(existing);
  // From / down: the first unsafe directory named is the outermost.
  for (const p of withAncestors(real).reverse()) {
    if (p === real && missing.length === 0) continue; // `dir` itself: checked below, more strictly
    checkAncestor(p, uid);
  }
  for (const p of missing) {
    try {
      mkdirSync(p, { mode: mode & 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // Whoever made it if not we (EEXIST: a symlink planted in a sticky /tmp meanwhile), it must be
    // a real directory: followed, the rest of the path would be created wherever it leads.
    if (lstatSync(p).isSymbolicLink())
      unsafe(
        p,
        'it is a symbolic link made while the path was created',
        `remove it (rm ${p}) and start again`,
      );
    if (p !== target) checkAncestor(p, uid);
  }
  const st = lstatSync(target);
  // A root-owned sticky directory (/tmp) for a socket someone configured there: entries in it can
  // be renamed or removed only by their owner, so the daemon's socket cannot be swapped.
  if (opts.allowSticky && !st.isSymbolicLink() && st.uid === 0 && (st.mode & 0o1000) !== 0) return;
  checkOwnDir(target, uid);
}

/** `dir` and every directory above it, up to /. */
function withAncestors(dir: string): string[] {
  const chain: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    chain.push(p);
    if (dirname(p) === p) return chain;
  }
}

/**
 * Every symlink met while resolving `path` must be root's or this user's: those on the path as
 * given (it and the directories above it) and those met inside a symlink's target, component by
 * component as the kernel resolves it. Checking only where they lead, a symlink another user placed
 * in a sticky /tmp passed, and its owner could point it elsewhere afterwards — at a directory or
 * file of their own. Resolution stops at the first missing component; past MAX_HOPS symlinks the
 * path is refused, as the kernel would (ELOOP).
 */
function checkSymlinks(path: string, uid: number): void {
  let done = '/';
  // Not `resolve`d: `..` after a symlink goes up from where the link leads, as in the kernel.
  const todo = (isAbsolute(path) ? path : `${process.cwd()}/${path}`).split('/').filter(Boolean);
  for (let hops = 0; todo.length > 0; ) {
    const p = join(done, todo.shift() as string);
    const st = lstatIfExists(p);
    if (!st) return;
    if (!st.isSymbolicLink()) {
      done = p;
      continue;
    }
    if (st.uid !== 0 && st.uid !== uid)
      unsafe(
        p,
        `it is a symlink owned by uid ${st.uid}, who could point it elsewhere`,
        'use the path it leads to, or a symlink of root or of this user',
      );
    if (++hops > MAX_HOPS)
      unsafe(path, `it passes more than ${MAX_HOPS} symlinks`, 'use the path they lead to');
    const to = readlinkSync(p);
    todo.unshift(...to.split('/').filter(Boolean));
    if (isAbsolute(to)) done = '/';
  }
}

/** Symlinks followed in resolving one path, as Linux's MAXSYMLINKS. */
const MAX_HOPS = 40;

function lstatIfExists(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function unsafe(path: string, why: string, fix: string): never {
  throw new DaemonError('SEAWALL_DAEMON_UNSAFE_PATH', `refusing to use ${path}: ${why}; ${fix}`, {
    path,
    why,
  });
}

function checkAncestor(path: string, uid: number): void {
  const st = statSync(path);
  if (!st.isDirectory()) unsafe(path, 'it is not a directory', 'remove it or choose another path');
  if (st.uid !== 0 && st.uid !== uid)
    unsafe(
      path,
      `it is owned by uid ${st.uid}, who could replace what is below it`,
      'choose a path under a directory of root or of this user',
    );
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
    unsafe(
      path,
      `it is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} and not sticky`,
      `chmod go-w ${path}`,
    );
}

function checkOwnDir(path: string, uid: number): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink())
    unsafe(
      path,
      'it is a symbolic link (whoever made it chooses where the sockets go)',
      `remove it (rm ${path}) and start again`,
    );
  if (!st.isDirectory()) unsafe(path, 'it is not a directory', `remove it (rm ${path}) and start again`);
  if (st.uid !== uid)
    unsafe(
      path,
      `it is owned by uid ${st.uid}, not by this daemon's uid ${uid}`,
      `remove it (rm -r ${path}) and start again, or chown it`,
    );
  if ((st.mode & 0o022) !== 0)
    unsafe(
      path,
      `it is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)})`,
      `chmod go-w ${path}`,
    );
}

/**
 * Throws SEAWALL_DAEMON_UNSAFE_PATH unless the file at `path` — the configuration, the policy, an
 * exec hook the daemon runs — could have been written by root or this daemon's user only: owned
 * by one of them and not group- or world-writable, with every directory above it, on the path as
 * given and on the path its symlinks lead to, root's or this user's and not writable by others
 * unless sticky. Otherwise another local user could write what root's daemon obeys: a hook it
 * executes, a policy that kills every VM. A file that is missing, unreachable or not a regular
 * file is left to its reader to refuse.
 */
export function checkTrustedFile(path: string, what: string): void {
  const uid = process.geteuid?.() ?? 0;
  let real: string;
  let st: Stats;
  try {
    real = realpathSync(path);
    st = statSync(real);
  } catch {
    // Missing, or not reachable by this user (EACCES, ENOTDIR, ELOOP): then it cannot be read
    // either, and its reader says why.
    return;
  }
  checkSymlinks(path, uid);
  for (const dir of new Set([...withAncestors(dirname(resolve(path))), ...withAncestors(dirname(real))]))
    checkAncestor(dir, uid);
  // Not a file at all (a FIFO, a device): its reader refuses it, saying so.
  if (!st.isFile()) return;
  if (st.uid !== 0 && st.uid !== uid)
    // A daemon run by another user than root (by hand, or under User=) may read its own files too.
    unsafe(
      real,
      `the ${what} is owned by uid ${st.uid}, who could change it`,
      `chown ${uid === 0 ? 'root' : uid} ${real}`,
    );
  if ((st.mode & 0o022) !== 0)
    unsafe(
      real,
      `the ${what} is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)})`,
      `chmod go-w ${real}`,
    );
}

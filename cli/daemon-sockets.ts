/**
 * Where the CLI looks for a running daemon, so that on an installed host `seawall status` needs no
 * flag. The order, for the control socket (and likewise for the plugin socket `simulate` drives):
 *
 *   1. `--control-socket PATH` (`--socket PATH`)
 *   2. `$SEAWALL_CONTROL_SOCKET` (`$SEAWALL_SOCKET`)
 *   3. `/run/seawall/control.sock` — the systemd units' socket (systemd/units/*.socket)
 *   4. the user runtime directory of a daemon run by hand: `$XDG_RUNTIME_DIR/seawall/`, else
 *      `/tmp/seawall-<uid>/` (daemon/paths.ts, the daemon's own default)
 *
 * A flag or the environment is taken as given; of 3 and 4 the first that is a socket wins. When
 * none is, the error names every place tried.
 *
 * A socket found by the search is trusted only if no one but root or its owner could have put it
 * there — `/tmp/seawall-<uid>` can be made by anyone, and a server planted in it would answer
 * `seawall reload` with a forged "is live". So, with the rules the daemon holds its own directories
 * to (daemon/paths.ts `ensureSafeDir`), symlinks resolved:
 *
 *   - every directory above the socket's is root's or this user's, and not writable by group or
 *     others unless sticky (/tmp);
 *   - the socket's directory is not writable by group or others, and it is root's or this user's,
 *     or another user's inside a directory only root can write to (/run/seawall, handed to the
 *     daemon's user by systemd's RuntimeDirectory=).
 *
 * Otherwise the search stops with an error naming the directory and its owner. The path returned
 * is the resolved one, so a symlink swapped after the check does not redirect the connection.
 */
import { realpathSync, type Stats, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { defaultRuntimeDir } from '../daemon/index.js';
import { CliError } from './cli-error.js';

/** The directory the shipped socket units listen in. */
export const SYSTEM_RUNTIME_DIR = '/run/seawall';

export type SocketKind = 'control' | 'plugin';

const FILE: Readonly<Record<SocketKind, string>> = { control: 'control.sock', plugin: 'plugin.sock' };
/** The environment variable naming each socket. */
export const SOCKET_ENV: Readonly<Record<SocketKind, string>> = {
  control: 'SEAWALL_CONTROL_SOCKET',
  plugin: 'SEAWALL_SOCKET',
};
const FLAG: Readonly<Record<SocketKind, string>> = { control: '--control-socket', plugin: '--socket' };

/** The search as an option's help states it: the socket found when the option is not given. */
export function socketSearchHelp(kind: SocketKind): string {
  const file = FILE[kind];
  return (
    `the daemon’s ${kind} socket (default: $${SOCKET_ENV[kind]}, ${SYSTEM_RUNTIME_DIR}/${file}, ` +
    `then $XDG_RUNTIME_DIR/seawall/${file}, else /tmp/seawall-<uid>/${file})`
  );
}

/** Places 3 and 4 of the search, in order; the user directory ignores systemd's RUNTIME_DIRECTORY. */
export function socketCandidates(kind: SocketKind, env: NodeJS.ProcessEnv = process.env): string[] {
  const user = join(defaultRuntimeDir({ ...env, RUNTIME_DIRECTORY: undefined }), FILE[kind]);
  const system = join(SYSTEM_RUNTIME_DIR, FILE[kind]);
  return user === system ? [system] : [system, user];
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

const writableBy = (st: Stats) => (st.mode & 0o002 ? 'everyone' : 'its group');

/**
 * Why a socket found by the search in the directory `real` (every symlink resolved) may not be
 * trusted by a user of `uid`, or null when it may.
 */
export function untrustedSocket(real: string, uid: number): string | null {
  const st = statSync(real);
  const mine = (s: Stats) => s.uid === 0 || s.uid === uid;
  for (let up = dirname(real), below = real; up !== below; below = up, up = dirname(up)) {
    const a = statSync(up);
    if (!mine(a)) return `${up}, a directory above it, is owned by uid ${a.uid}, not by root or uid ${uid}`;
    if ((a.mode & 0o022) !== 0 && (a.mode & 0o1000) === 0)
      return `${up}, a directory above it, is writable by ${writableBy(a)} and not sticky`;
  }
  if ((st.mode & 0o022) !== 0)
    return `its directory ${real} is writable by ${writableBy(st)} (mode ${(st.mode & 0o7777).toString(8)}), who could have put the socket there`;
  if (mine(st)) return null;
  const parent = statSync(dirname(real));
  // Only root can make an entry in a root-owned directory no one else may write to: it handed
  // this one to its owner (the daemon's user), as systemd does with RuntimeDirectory=.
  if (parent.uid === 0 && (parent.mode & 0o022) === 0) return null;
  return (
    `its directory ${real} is owned by uid ${st.uid}, not by root or uid ${uid}, ` +
    `inside ${dirname(real)}, where anyone may create it`
  );
}

/** `path` with its directory's symlinks resolved, once it is shown to be a socket no one else planted. */
function trusted(kind: SocketKind, path: string, uid: number): string {
  const real = realpathSync(dirname(path));
  const why = untrustedSocket(real, uid);
  if (why === null) return join(real, basename(path));
  throw new CliError(
    'failed',
    `refusing the ${kind} socket ${path}: ${why}; if it is not your daemon's, remove it ` +
      `(rm -r ${dirname(path)}), or name the socket with ${FLAG[kind]} PATH`,
  );
}

/** The socket to use, by the documented order; CliError `failed` (exit 1) when no daemon is found. */
export function findSocket(
  kind: SocketKind,
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (flag !== undefined) return flag;
  const fromEnv = env[SOCKET_ENV[kind]];
  if (fromEnv) return fromEnv;
  const candidates = socketCandidates(kind, env);
  const found = candidates.find(isSocket);
  if (found) return trusted(kind, found, process.geteuid?.() ?? 0);
  throw new CliError(
    'failed',
    `no seawall daemon found: no ${kind} socket at ${candidates.join(' or ')}; ` +
      `start one (systemctl start seawall, or seawall daemon), or name the socket with ${FLAG[kind]} PATH ` +
      `or ${SOCKET_ENV[kind]}`,
  );
}

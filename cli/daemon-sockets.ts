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
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
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
  if (found) return found;
  throw new CliError(
    'failed',
    `no seawall daemon found: no ${kind} socket at ${candidates.join(' or ')}; ` +
      `start one (systemctl start seawall, or seawall daemon), or name the socket with ${FLAG[kind]} PATH ` +
      `or ${SOCKET_ENV[kind]}`,
  );
}

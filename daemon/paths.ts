/**
 * Where the daemon keeps its sockets and state when nothing says otherwise. Under systemd the
 * unit's RuntimeDirectory=/StateDirectory= arrive as $RUNTIME_DIRECTORY / $STATE_DIRECTORY; a user
 * running it by hand gets $XDG_RUNTIME_DIR and $XDG_STATE_HOME, so no root is needed.
 */
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

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

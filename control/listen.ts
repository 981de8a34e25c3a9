/**
 * Binding the control socket: on a path the daemon creates (mode 0600 by default, set right after
 * bind; the parent directory is created 0750 so the socket is never reachable more widely in the
 * meantime), or on an fd systemd passed by socket activation (FileDescriptorName=control), whose
 * mode the .socket unit owns.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname } from 'node:path';
import { checkSocketPath, claimSocketPath } from '../kvm/index.js';
import { ControlError } from './errors.js';

export type ControlListenTarget = { path: string; mode?: number } | { fd: number };

/** Default mode of a control socket the daemon creates itself. */
export const CONTROL_SOCKET_MODE = 0o600;

/** Listens on `target`; resolves with the path it created (to unlink at close), or null for an fd. */
export async function listenControl(server: Server, target: ControlListenTarget): Promise<string | null> {
  const bind = (arg: string | { fd: number }) =>
    new Promise<void>((resolve, reject) => {
      const fail = (err: Error) =>
        reject(new ControlError('SEAWALL_CONTROL_LISTEN', `control socket: ${err.message}`, { cause: err }));
      server.once('error', fail);
      server.listen(arg as never, () => {
        server.off('error', fail);
        resolve();
      });
    });
  if ('fd' in target) {
    await bind({ fd: target.fd });
    return null;
  }
  checkSocketPath(target.path, 'bind');
  mkdirSync(dirname(target.path), { recursive: true, mode: 0o750 });
  const claimed = await claimSocketPath(target.path).catch((err: Error) => {
    throw new ControlError('SEAWALL_CONTROL_LISTEN', `cannot probe ${target.path}: ${err.message}`, {
      cause: err,
    });
  });
  if (claimed === 'served')
    throw new ControlError(
      'SEAWALL_CONTROL_LISTEN',
      `another process is already listening on ${target.path}`,
    );
  await bind(target.path);
  chmodSync(target.path, target.mode ?? CONTROL_SOCKET_MODE);
  return target.path;
}

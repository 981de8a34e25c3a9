/**
 * The vCPU attach server as the daemon runs it: its socket the one seawall-attach.socket passes, else
 * made beside the plugin socket the daemon actually serves (a unit's, under socket activation, known
 * only once taken), and its refusals as rate-bounded notices.
 */
import { dirname } from 'node:path';
import { AttachServer, attachServerOptions } from '../attach/index.js';
import { JournalField as F } from '../systemd/index.js';
import type { DaemonConfig } from './config.js';
import { DaemonError } from './errors.js';
import { type DaemonLog, Priority } from './log.js';
import { ensureSafeDir } from './paths.js';

export function createAttachServer(
  config: DaemonConfig,
  pluginSocket: () => string | null,
  log: DaemonLog,
): AttachServer | null {
  if (!config.attach.enabled) return null;
  return new AttachServer(
    attachServerOptions(config.attach, pluginSocket, (message, fields) =>
      log.notice(`attach:${String(fields.reason)}`, {
        message,
        priority: Priority.NOTICE,
        fields: { [F.REASON]: String(fields.reason) },
      }),
    ),
  );
}

/**
 * Starts the attach server on the socket its unit passed (`fd`), or on one it makes. A passed attach
 * socket with attach disabled is refused: nobody would answer the VMMs that connect to it.
 */
export function listenAttach(
  attach: AttachServer | null,
  fd: number | undefined,
  announce: (line: string) => void,
): void {
  if (attach === null) {
    if (fd === undefined) return;
    throw new DaemonError(
      'SEAWALL_DAEMON_CONFIG',
      `an attach socket was passed (fd ${fd}) but attach.enabled is false: enable attach, or mask the ` +
        'socket unit that passes it (systemctl mask --now seawall-attach.socket)',
    );
  }
  if (fd === undefined) {
    ensureSafeDir(dirname(attach.address), 0o755, { allowSticky: true });
    attach.listen();
  } else attach.listen(fd);
  announce(`attach socket: ${attach.address}${fd === undefined ? '' : ` (fd ${fd}, socket activation)`}`);
}

/**
 * The vCPU attach server as the daemon runs it: its socket beside the plugin socket the daemon
 * actually serves (a unit's, under socket activation, known only once taken), and its refusals as
 * rate-bounded notices.
 */
import { AttachServer, attachServerOptions } from '../attach/index.js';
import { JournalField as F } from '../systemd/index.js';
import type { DaemonConfig } from './config.js';
import { type DaemonLog, Priority } from './log.js';

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

/**
 * What a start that fails tells the operator besides the line on stderr: one journal entry at
 * priority err (MESSAGE_ID DAEMON_START_FAILED, catalog entry in systemd/catalog/) with the reason,
 * and the reason as the unit's status for the service manager.
 *
 * No STOPPING=1 and no DAEMON_STOPPING: sd_notify(3) has STOPPING=1 tell the manager that "the
 * service is beginning its shutdown", and a service that never sent READY=1 never ran. systemd
 * learns of the failure from the exit status; `STATUS=` and, for a failed system call, `ERRNO=`
 * are what `systemctl status` shows beside it. EXIT_STATUS= is not sent: systemd does not consume
 * it from services (sd_notify(3)).
 */
import { isSeawallError, thrownText } from '../errors/index.js';
import { createNotifier, JournalField as F, type Notifier } from '../systemd/index.js';
import { createDaemonLog, type DaemonLog, type DaemonLogOptions, MessageId, Priority } from './log.js';

/** SEAWALL_REASON of an error that has no code of its own: a bug rather than a refusal. */
export const UNEXPECTED_START_ERROR = 'unexpected';

/**
 * The short code a failed start is logged under: the seawall error's code
 * (`SEAWALL_DAEMON_POLICY` …), the system call's error name for an error straight from Node
 * (`EACCES` …), else {@link UNEXPECTED_START_ERROR}.
 */
export function startFailureReason(err: unknown): string {
  if (isSeawallError(err)) return err.code;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : UNEXPECTED_START_ERROR;
}

/** Logs why the start failed and tells the service manager; the caller then exits non-zero. */
export function reportStartFailure(log: DaemonLog, notifier: Notifier, err: unknown): void {
  const why = thrownText(err);
  log.log({
    message: `seawall cannot start: ${why}`,
    priority: Priority.ERR,
    messageId: MessageId.DAEMON_START_FAILED,
    fields: { [F.REASON]: startFailureReason(err) },
  });
  notifier.failed(`cannot start: ${why}`, err);
}

/**
 * The same for a start that fails before there is a service to report it (the configuration does
 * not load): a log and a notifier of its own. Returns both, the log closed, for the caller to drain.
 */
export function reportEarlyStartFailure(
  mode: DaemonLogOptions['mode'],
  err: unknown,
): { log: DaemonLog; notifier: Notifier } {
  const log = createDaemonLog({ mode });
  const notifier = createNotifier(process.env);
  reportStartFailure(log, notifier, err);
  log.close();
  return { log, notifier };
}

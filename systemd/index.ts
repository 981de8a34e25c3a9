/** systemd integration: sd_notify, watchdog, socket activation, journald. Re-exports only. */
export type { SystemdErrorCode, SystemdErrorHandler } from './errors.js';
export { isSystemdError, SystemdError } from './errors.js';
export type {
  JournalEntry,
  JournalLogger,
  JournalLoggerOptions,
  JournalPriority,
  JournalTarget,
} from './journal.js';
export { createJournalLogger, JOURNAL_SOCKET, Priority, stderrIsJournalStream } from './journal.js';
export type { JournalFieldName, JournalFieldValue } from './journal-fields.js';
export { JournalField } from './journal-fields.js';
export type { ListenFd, ListenFds, ListenFdsOptions, ListenSocketType } from './listen-fds.js';
export { pickListenFds, SD_LISTEN_FDS_START, takeListenFds } from './listen-fds.js';
export type { MessageEntry, MessageFieldName, SeawallEntry } from './message-fields.js';
export { MessageFields } from './message-fields.js';
export type { MessageIdValue } from './message-ids.js';
export { ALL_MESSAGE_IDS, MessageId } from './message-ids.js';
export type { Notifier, NotifierOptions } from './notify.js';
export { createNotifier, monotonicUsec, STATUS_MAX_BYTES, statusText } from './notify.js';
export type { Watchdog, WatchdogOptions } from './watchdog.js';
export { createWatchdog } from './watchdog.js';

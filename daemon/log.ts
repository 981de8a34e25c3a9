/**
 * The daemon's own log: one journald logger (systemd/), stderr lines when journald is absent, and a
 * token bucket that bounds how many per-event entries are written per second. Memory errors are
 * rare in production; a burst (or a benchmark) must not turn logging into the bottleneck or trip
 * journald's own rate limit — suppressed entries are counted and summarised instead.
 */
import {
  createJournalLogger,
  type JournalEntry,
  type JournalLogger,
  MessageId,
  Priority,
} from '../systemd/index.js';

export interface DaemonLog {
  readonly target: 'journal' | 'stderr';
  /** Always written (start, stop, reloads, errors). */
  log(entry: JournalEntry): void;
  /**
   * Takes a token for one per-event entry: true when it may be written (then call log()), false
   * when it is suppressed (and counted). Asked before building the entry, so a suppressed entry
   * costs nothing.
   */
  admitEvent(): boolean;
  /** Per-event entries suppressed since start. */
  readonly suppressed: number;
  close(): void;
}

export interface DaemonLogOptions {
  identifier?: string;
  mode?: 'auto' | 'journal' | 'stderr';
  /** Per-event entries per second (burst = the same number). */
  eventsPerSecond?: number;
  logger?: JournalLogger;
}

export function createDaemonLog(opts: DaemonLogOptions = {}): DaemonLog {
  const logger =
    opts.logger ??
    createJournalLogger({
      identifier: opts.identifier ?? 'seawall',
      mode: opts.mode ?? 'auto',
      onError: (err) => process.stderr.write(`seawall: journald: ${err.message}\n`),
    });
  const rate = opts.eventsPerSecond ?? 1000;
  let tokens = rate;
  let last = Date.now();
  let suppressed = 0;
  let suppressedSinceSummary = 0;
  const summary = setInterval(() => {
    if (suppressedSinceSummary === 0) return;
    logger.log({
      message: `${suppressedSinceSummary} memory-error entries not logged individually (over ${rate}/s); counts are exact in metrics and the event store`,
      priority: Priority.NOTICE,
      fields: { SEAWALL_REASON: 'log_rate_limit', SEAWALL_SUPPRESSED: suppressedSinceSummary },
    });
    suppressedSinceSummary = 0;
  }, 10_000);
  summary.unref();
  return {
    target: logger.target,
    log: (entry) => logger.log(entry),
    admitEvent() {
      const now = Date.now();
      tokens = Math.min(rate, tokens + ((now - last) * rate) / 1000);
      last = now;
      if (tokens >= 1) {
        tokens -= 1;
        return true;
      }
      suppressed++;
      suppressedSinceSummary++;
      return false;
    },
    get suppressed() {
      return suppressed;
    },
    close() {
      clearInterval(summary);
    },
  };
}

export { MessageId, Priority };

/**
 * The daemon's own log: one journald logger (systemd/), stderr lines when journald is absent, and a
 * token bucket that bounds how many per-event entries are written per second. Memory errors are
 * rare in production; a burst (or a benchmark) must not turn logging into the bottleneck or trip
 * journald's own rate limit — suppressed entries are counted and summarised instead.
 *
 * On a console (no journald) one line per event is noise an operator cannot read: there the
 * per-event entries are summarised by default, one line every 10 s with the counts by action and
 * the VMs, pointing at `seawall events` for the details (`--log-events each` restores them).
 */
import {
  createJournalLogger,
  JournalField as F,
  type JournalLogger,
  MessageId,
  Priority,
  type SeawallEntry,
} from '../systemd/index.js';

export interface DaemonLog {
  readonly target: 'journal' | 'stderr';
  /**
   * Always written (start, stop, reloads, errors). An entry with a MESSAGE_ID carries the fields
   * its catalog entry may name (systemd/message-fields.ts).
   */
  log(entry: SeawallEntry): void;
  /**
   * Takes a token for one per-event entry of `vm`: true when it may be written (then call log()),
   * false when it is suppressed (and counted). Asked before building the entry, so a suppressed
   * entry costs nothing. One VM takes at most a tenth of the rate ({@link VM_SHARE}): one VM's
   * flood leaves the rest of the host's entries to the other VMs.
   */
  admitEvent(vm: string): boolean;
  /** Per-event entries suppressed since start. */
  readonly suppressed: number;
  /**
   * Logs an entry that a peer can cause at will (a refused connection, a protocol error, a refused
   * attach): at most `noticesPerMinute` per `key` each minute, the rest counted and summarised in
   * one line per key and minute. Metrics count every one of them exactly. `perMinute` overrides
   * the limit for this key.
   */
  notice(key: string, entry: SeawallEntry, perMinute?: number): void;
  /** `each`: one entry per event; `summary`: events are counted into a periodic summary line. */
  readonly eventMode: 'each' | 'summary';
  /** Counts one event (its action) of `vm` into the next summary line (summary mode). */
  countEvent(action: string, vm: string): void;
  close(): void;
  /** True once every entry so far reached journald; false when it did not within `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
}

/** How often the summary of per-event entries is written (summary mode). */
export const EVENT_SUMMARY_INTERVAL_MS = 10_000;
/** VMs named in one summary line; the rest are counted. */
const SUMMARY_VMS = 5;
/**
 * Per-event entries a second by default (`logEventsPerSecond`). journald's own per-service limit
 * (RateLimitBurst= 10,000 in 30 s, not scaled up when its space is nearly used) is below it: the shipped unit
 * raises the daemon's (LogRateLimitBurst=, systemd/units/seawall.service).
 */
export const LOG_EVENTS_PER_SECOND = 1000;

/** One VM's per-event entries a second: the host's rate divided by this (at least 1). */
export const VM_SHARE = 10;
/**
 * VMs whose allowance is tracked at once (a hostile plugin may invent a VM id per event); past it
 * the tracking starts again, every VM's allowance full.
 */
const MAX_VM_BUCKETS = 4096;

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  last: number;
}

interface VmBucket extends Bucket {
  /** Entries suppressed since the last summary (for naming the VMs that had most). */
  suppressed: number;
}

/** Adds what `rate` tokens a second gave `b` since its last refill, up to a burst of `rate`. */
function refill(b: Bucket, rate: number, now: number): void {
  b.tokens = Math.min(rate, b.tokens + ((now - b.last) * rate) / 1000);
  b.last = now;
}

export interface DaemonLogOptions {
  identifier?: string;
  mode?: 'auto' | 'journal' | 'stderr';
  /** Per-event entries per second (burst = the same number). */
  eventsPerSecond?: number;
  /** Peer-caused notices logged per key and minute before they are only summarised. */
  noticesPerMinute?: number;
  /** `auto` (default): each event under journald, a summary on stderr. */
  events?: 'each' | 'summary' | 'auto';
  logger?: JournalLogger;
}

export function createDaemonLog(opts: DaemonLogOptions = {}): DaemonLog {
  const rate = opts.eventsPerSecond ?? LOG_EVENTS_PER_SECOND;
  const vmRate = Math.max(1, rate / VM_SHARE);
  const logger =
    opts.logger ??
    createJournalLogger({
      identifier: opts.identifier ?? 'seawall',
      mode: opts.mode ?? 'auto',
      onError: (err) => process.stderr.write(`seawall: journald: ${err.message}\n`),
    });
  // Monotonic: a wall clock stepped back (NTP, `date -s`) would leave the bucket far below zero.
  const host: Bucket = { tokens: rate, last: performance.now() };
  let buckets = new Map<string, VmBucket>();
  let suppressed = 0;
  let suppressedSinceSummary = 0;
  const reportSuppressed = () => {
    if (suppressedSinceSummary === 0) return;
    const most: [string, number][] = [];
    for (const [vm, b] of buckets) {
      if (b.suppressed === 0) continue;
      most.push([vm, b.suppressed]);
      b.suppressed = 0;
    }
    most.sort((a, b) => b[1] - a[1]);
    const named = most
      .slice(0, SUMMARY_VMS)
      .map(([vm, n]) => `${vm} (${n})`)
      .join(', ');
    const from =
      named === '' ? '' : `, most from VMs ${named}${most.length > SUMMARY_VMS ? ' and others' : ''}`;
    logger.log({
      message: `${suppressedSinceSummary} memory-error entries not logged individually (over ${rate}/s, or ${vmRate}/s for one VM${from}); counts are exact in metrics and the event store`,
      priority: Priority.NOTICE,
      fields: { [F.REASON]: 'log_rate_limit', [F.SUPPRESSED]: suppressedSinceSummary },
    });
    suppressedSinceSummary = 0;
  };
  const summary = setInterval(reportSuppressed, 10_000);
  summary.unref();
  const notices = noticeLimiter(logger, opts.noticesPerMinute ?? 10);
  const eventMode =
    opts.events === 'each' || opts.events === 'summary'
      ? opts.events
      : logger.target === 'journal'
        ? 'each'
        : 'summary';
  const byAction = new Map<string, number>();
  const vms = new Set<string>();
  let otherVms = false;
  let counted = 0;
  const flush = () => {
    if (counted === 0) return;
    const actions = [...byAction].map(([a, n]) => `${a} ${n}`).join(', ');
    const named = [...vms].join(', ');
    logger.log({
      message: `${counted} memory error${counted === 1 ? '' : 's'} in the last ${EVENT_SUMMARY_INTERVAL_MS / 1000} s (${actions}) on VMs ${named}${otherVms ? ' and others' : ''} — seawall events for each`,
      priority: Priority.NOTICE,
      fields: { [F.REASON]: 'event_summary', [F.EVENTS]: counted },
    });
    counted = 0;
    byAction.clear();
    vms.clear();
    otherVms = false;
  };
  const summaries = eventMode === 'summary' ? setInterval(flush, EVENT_SUMMARY_INTERVAL_MS) : null;
  summaries?.unref();
  return {
    target: logger.target,
    eventMode,
    countEvent(action, vm) {
      counted++;
      byAction.set(action, (byAction.get(action) ?? 0) + 1);
      // Bounded: only the names that will be printed are kept.
      if (vms.size < SUMMARY_VMS) vms.add(vm);
      else if (!vms.has(vm)) otherVms = true;
    },
    log: (entry) => logger.log(entry),
    admitEvent(vm) {
      const now = performance.now();
      refill(host, rate, now);
      let b = buckets.get(vm);
      if (b === undefined) {
        if (buckets.size >= MAX_VM_BUCKETS) buckets = new Map();
        b = { tokens: vmRate, last: now, suppressed: 0 };
        buckets.set(vm, b);
      } else refill(b, vmRate, now);
      if (host.tokens >= 1 && b.tokens >= 1) {
        host.tokens -= 1;
        b.tokens -= 1;
        return true;
      }
      b.suppressed++;
      suppressed++;
      suppressedSinceSummary++;
      return false;
    },
    get suppressed() {
      return suppressed;
    },
    notice: notices.notice,
    drain: (timeoutMs) => logger.drain(timeoutMs),
    close() {
      clearInterval(summary);
      // What the last seconds before a stop suppressed is said too.
      reportSuppressed();
      notices.close();
      if (summaries) clearInterval(summaries);
      flush();
    },
  };
}

/** Most distinct notice keys tracked in one minute; further keys share one overflow bucket. */
const MAX_NOTICE_KEYS = 64;

function noticeLimiter(logger: JournalLogger, perMinute: number) {
  // key → [logged this window, suppressed this window, the key's limit]
  let window = new Map<string, [number, number, number]>();
  const flush = () => {
    for (const [key, [, dropped, limit]] of window) {
      if (dropped === 0) continue;
      logger.log({
        message: `${dropped} more '${key}' notices in the last minute not logged individually (over ${limit}/min); metrics count every one`,
        priority: Priority.NOTICE,
        fields: { [F.REASON]: 'log_rate_limit', [F.SUPPRESSED]: dropped },
      });
    }
    window = new Map();
  };
  const timer = setInterval(flush, 60_000);
  timer.unref();
  return {
    notice(key: string, entry: SeawallEntry, limit = perMinute): void {
      const k = window.has(key) || window.size < MAX_NOTICE_KEYS ? key : 'other';
      let slot = window.get(k);
      if (!slot) {
        slot = [0, 0, k === key ? limit : perMinute];
        window.set(k, slot);
      }
      if (slot[0] < slot[2]) {
        slot[0]++;
        logger.log(entry);
      } else slot[1]++;
    },
    close(): void {
      clearInterval(timer);
      flush();
    },
  };
}

export { MessageId, Priority };

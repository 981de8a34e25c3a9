/**
 * Service state notifications to the service manager, per sd_notify(3).
 *
 * libsystemd does the sending because Node's `dgram` has no AF_UNIX datagram sockets, and
 * NOTIFY_SOCKET is one (possibly abstract, `@…`). Without NOTIFY_SOCKET every method is a no-op,
 * exactly like sd_notify(3) itself; that is how the daemon runs outside systemd.
 *
 * sd_notify blocks in sendmsg(2) while the manager's socket is not read and its receive queue is
 * full (PID 1 has one for every service, and reads none of it during a long daemon-reload): on
 * the event loop that held every verdict and the SIGTERM handler. So notifications are sent off
 * it, one at a time in order, through koffi's asynchronous call (a thread of libuv's pool), and
 * wait meanwhile in a small queue where newer ones replace what they supersede (notify-queue.ts).
 */

import type { SystemdErrorHandler } from './errors.js';
import { SystemdError } from './errors.js';
import { assertProcessEnvironment, errnoName, LIBSYSTEMD_SONAME, tryLoadLibsystemd } from './libsystemd.js';
import { enqueueNotification, type Notification, type NotificationKind } from './notify-queue.js';
import { sendLine } from './send-line.js';

/** Options for {@link createNotifier}. */
export interface NotifierOptions {
  /**
   * Called once when NOTIFY_SOCKET is set but libsystemd cannot be loaded, and once per run of
   * failed sends (a failure after a success is reported again). Defaults to ignoring them: a
   * notification is never worth crashing the daemon.
   */
  onError?: SystemdErrorHandler;
  /** The library to load; only tests change it. */
  library?: string;
}

/** Sends sd_notify(3) state strings. All methods are no-ops when {@link Notifier.enabled} is false. */
export interface Notifier {
  /** True when NOTIFY_SOCKET is set and libsystemd is loaded. */
  readonly enabled: boolean;
  /** `READY=1` (and `STATUS=`): start-up finished, or a reload finished after {@link reloading}. */
  ready(status?: string): void;
  /** `STATUS=`: free-form text shown by `systemctl status`. */
  status(text: string): void;
  /**
   * `RELOADING=1` with `MONOTONIC_USEC=` in the same message, as Type=notify-reload requires
   * (sd_notify(3)); follow with {@link ready} once the new configuration is live.
   */
  reloading(status?: string): void;
  /** `STOPPING=1`: shutdown has begun. Not for a start that failed: see {@link failed}. */
  stopping(status?: string): void;
  /**
   * `STATUS=` saying why the service failed, and `ERRNO=` when `error` is, or was caused by, a
   * failed system call: sd_notify(3) "If a service fails, the errno-style error code".
   * `systemctl status` shows both. The process is expected to exit non-zero next.
   */
  failed(status: string, error?: unknown): void;
  /** `WATCHDOG=1`: keep-alive ping for WatchdogSec= (see watchdog.ts for the timer). */
  watchdogPing(): void;
  /** `EXTEND_TIMEOUT_USEC=`: ask for more time in the current start/stop phase. */
  extendTimeout(usec: number): void;
  /** Sends a raw newline-separated assignment list; for states this interface does not name. */
  send(state: string): void;
  /**
   * Resolves true once every notification given so far has been handed to the manager, false if
   * that has not happened within `timeoutMs` (its socket not read: the process may then exit
   * without them, see docs/systemd.md). Always true when disabled.
   */
  drain(timeoutMs: number): Promise<boolean>;
}

const NOOP_NOTIFIER: Notifier = Object.freeze({
  enabled: false,
  ready() {},
  status() {},
  reloading() {},
  stopping() {},
  failed() {},
  watchdogPing() {},
  extendTimeout() {},
  send() {},
  drain: () => Promise.resolve(true),
});

/** The most bytes of a STATUS= text; the rest of a longer one is cut, with a pointer to the journal. */
export const STATUS_MAX_BYTES = 1024;
const CUT = ' … (see the journal)';

/**
 * A STATUS= text that is one assignment: PID 1 splits a notification on newlines and carriage
 * returns, so either would let text forge READY=1 or MAINPID=; every control character becomes a
 * space. Cut to STATUS_MAX_BYTES: PID 1 drops a whole notification of 4,096 bytes or more, and a
 * failure's status (a policy with sixty mistakes) would leave `systemctl status` with no reason.
 */
export function statusText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
  const line = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  if (Buffer.byteLength(line) <= STATUS_MAX_BYTES) return line;
  let cut = line.slice(0, STATUS_MAX_BYTES - Buffer.byteLength(CUT));
  while (Buffer.byteLength(cut) > STATUS_MAX_BYTES - Buffer.byteLength(CUT)) cut = cut.slice(0, -1);
  // A lone high surrogate left at the cut would not encode.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}${CUT}`;
}

function withStatus(state: string, status: string | undefined): string {
  return status === undefined ? state : `${state}\nSTATUS=${statusText(status)}`;
}

/** How many causes deep {@link errnoOf} looks for a system call's error. */
const CAUSE_DEPTH = 8;

/** The positive errno of the first failed system call in `error`'s cause chain, if any. */
function errnoOf(error: unknown): number | undefined {
  let e = error;
  for (let depth = 0; e instanceof Error && depth < CAUSE_DEPTH; depth++) {
    // Node's system errors carry `syscall` and a negative `errno` (libuv's -errno convention).
    const { errno, syscall } = e as NodeJS.ErrnoException;
    if (typeof errno === 'number' && errno !== 0 && typeof syscall === 'string') return Math.abs(errno);
    e = e.cause;
  }
  return undefined;
}

/** CLOCK_MONOTONIC in µs: libuv's hrtime reads CLOCK_MONOTONIC on Linux, the clock RELOADING=1 wants. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * Creates a notifier for the process environment.
 *
 * `env` exists so callers can pass `{}` to disable notifications; a non-empty NOTIFY_SOCKET
 * must match `process.env` because libsystemd reads the real environment.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_ENV_MISMATCH` when `env` names another socket.
 */
export function createNotifier(
  env: NodeJS.ProcessEnv = process.env,
  options: NotifierOptions = {},
): Notifier {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return NOOP_NOTIFIER;
  assertProcessEnvironment(env, ['NOTIFY_SOCKET']);
  const onError = options.onError ?? (() => {});
  const lib = tryLoadLibsystemd(options.library ?? LIBSYSTEMD_SONAME);
  if (lib instanceof SystemdError) {
    onError(lib);
    return NOOP_NOTIFIER;
  }
  const sdNotify = lib.sdNotify;
  let failing = false;
  const queue: Notification[] = [];
  const line = sendLine();

  function sent(text: string, err: unknown, rc: number): void {
    if (!err && rc >= 0) {
      failing = false;
      return;
    }
    if (failing) return;
    failing = true;
    const errno = err ? String((err as Error)?.message ?? err) : errnoName(rc);
    onError(
      new SystemdError('SEAWALL_SYSTEMD_NOTIFY_FAILED', `sd_notify failed: ${errno}`, {
        errno,
        state: text.split('\n', 1)[0],
      }),
    );
  }

  // unset_environment stays 0: the watchdog and later states need NOTIFY_SOCKET again, and
  // NotifyAccess=main makes the manager drop anything children send with the inherited socket.
  function pump(): void {
    const next = line.take(queue);
    if (next === undefined) return;
    sdNotify.async(0, next.text, (err: unknown, rc: number) => {
      sent(next.text, err, rc);
      pump();
    });
  }

  function notify(kind: NotificationKind, text: string): void {
    enqueueNotification(queue, { kind, text });
    if (!line.sending) pump();
  }

  return {
    enabled: true,
    ready: (status) => notify('ready', withStatus('READY=1', status)),
    status: (text) => notify('status', `STATUS=${statusText(text)}`),
    reloading: (status) =>
      notify('reloading', withStatus(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`, status)),
    stopping: (status) => notify('state', withStatus('STOPPING=1', status)),
    failed: (status, error) => {
      const errno = errnoOf(error);
      notify('state', `STATUS=${statusText(status)}${errno === undefined ? '' : `\nERRNO=${errno}`}`);
    },
    watchdogPing: () => notify('watchdog', 'WATCHDOG=1'),
    extendTimeout: (usec) => notify('extend', `EXTEND_TIMEOUT_USEC=${Math.max(0, Math.trunc(usec))}`),
    send: (state) => notify('state', state),
    drain: line.drain,
  };
}

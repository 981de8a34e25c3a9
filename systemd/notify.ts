/**
 * Service state notifications to the service manager, per sd_notify(3).
 *
 * libsystemd does the sending because Node's `dgram` has no AF_UNIX datagram sockets, and
 * NOTIFY_SOCKET is one (possibly abstract, `@…`). Without NOTIFY_SOCKET every method is a no-op,
 * exactly like sd_notify(3) itself; that is how the daemon runs outside systemd.
 */
import type { SystemdErrorHandler } from './errors.js';
import { SystemdError } from './errors.js';
import { assertProcessEnvironment, errnoName, LIBSYSTEMD_SONAME, tryLoadLibsystemd } from './libsystemd.js';

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
});

// A newline would start a new assignment (sd_notify(3): "newline-separated"), letting text forge
// READY=1 or similar; STATUS= is one line.
function oneLine(text: string): string {
  return text.includes('\n') ? text.replace(/\n/g, ' ') : text;
}

function withStatus(state: string, status: string | undefined): string {
  return status === undefined ? state : `${state}\nSTATUS=${oneLine(status)}`;
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

  // unset_environment stays 0: the watchdog and later states need NOTIFY_SOCKET again, and
  // NotifyAccess=main makes the manager drop anything children send with the inherited socket.
  function send(state: string): void {
    const rc = sdNotify(0, state);
    if (rc >= 0) {
      failing = false;
      return;
    }
    if (failing) return;
    failing = true;
    onError(
      new SystemdError('SEAWALL_SYSTEMD_NOTIFY_FAILED', `sd_notify failed: ${errnoName(rc)}`, {
        errno: errnoName(rc),
        state: state.split('\n', 1)[0],
      }),
    );
  }

  return {
    enabled: true,
    ready: (status) => send(withStatus('READY=1', status)),
    status: (text) => send(`STATUS=${oneLine(text)}`),
    reloading: (status) => send(withStatus(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`, status)),
    stopping: (status) => send(withStatus('STOPPING=1', status)),
    failed: (status, error) => {
      const errno = errnoOf(error);
      send(`STATUS=${oneLine(status)}${errno === undefined ? '' : `\nERRNO=${errno}`}`);
    },
    watchdogPing: () => send('WATCHDOG=1'),
    extendTimeout: (usec) => send(`EXTEND_TIMEOUT_USEC=${Math.max(0, Math.trunc(usec))}`),
    send,
  };
}

/**
 * The service watchdog: WATCHDOG=1 pings at half of WatchdogSec=, per sd_watchdog_enabled(3)
 * ("daemons should send WATCHDOG=1 … at half the interval").
 *
 * The pings come from a plain timer on the event loop on purpose: if the loop is blocked (a
 * runaway policy, a synchronous stall on the verdict path), the pings stop and systemd restarts
 * the daemon. Pinging from a worker thread would hide exactly the hang the watchdog exists for.
 * notify.ts sends each ping from a thread of libuv's pool, but only one the timer queued: a
 * blocked loop queues none, and behind a send the manager does not take, at most one waits.
 */
import type { SystemdErrorHandler } from './errors.js';
import { SystemdError } from './errors.js';
import { assertProcessEnvironment, errnoName, LIBSYSTEMD_SONAME, tryLoadLibsystemd } from './libsystemd.js';
import type { Notifier } from './notify.js';

/** Options for {@link createWatchdog}. */
export interface WatchdogOptions {
  /** Reports a missing libsystemd (once) when WATCHDOG_USEC is set. */
  onError?: SystemdErrorHandler;
  /** The library to load; only tests change it. */
  library?: string;
}

/** A keep-alive timer for WatchdogSec=. {@link start} and {@link stop} are idempotent. */
export interface Watchdog {
  /** True when the manager expects pings from this process and the notifier can send them. */
  readonly enabled: boolean;
  /** WATCHDOG_USEC as the manager set it, or 0n when disabled. */
  readonly timeoutUsec: bigint;
  /** Milliseconds between pings (half the timeout), or 0 when disabled. */
  readonly pingIntervalMs: number;
  /** True between {@link start} and {@link stop}. */
  readonly running: boolean;
  /** Sends one ping now, then one every {@link pingIntervalMs}. No-op when disabled. */
  start(): void;
  /** Stops pinging (before STOPPING=1, so a slow shutdown is bounded by TimeoutStopSec= instead). */
  stop(): void;
}

/**
 * Creates the watchdog for this process. Reads WATCHDOG_USEC and WATCHDOG_PID through
 * sd_watchdog_enabled(3), which also checks that WATCHDOG_PID names this process, so a child
 * that inherited the variables does not ping on the parent's behalf.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_WATCHDOG_INVALID` when the variables are malformed;
 *   `SEAWALL_SYSTEMD_ENV_MISMATCH` when `env` disagrees with the process environment.
 */
export function createWatchdog(
  notifier: Notifier,
  env: NodeJS.ProcessEnv = process.env,
  options: WatchdogOptions = {},
): Watchdog {
  if (!notifier.enabled || env.WATCHDOG_USEC === undefined) return disabledWatchdog();
  assertProcessEnvironment(env, ['WATCHDOG_USEC', 'WATCHDOG_PID']);
  const lib = tryLoadLibsystemd(options.library ?? LIBSYSTEMD_SONAME);
  if (lib instanceof SystemdError) {
    options.onError?.(lib);
    return disabledWatchdog();
  }
  const out: [number | bigint] = [0];
  const rc = lib.sdWatchdogEnabled(0, out);
  if (rc < 0) {
    throw new SystemdError(
      'SEAWALL_SYSTEMD_WATCHDOG_INVALID',
      `sd_watchdog_enabled failed: ${errnoName(rc)}`,
      {
        errno: errnoName(rc),
        WATCHDOG_USEC: env.WATCHDOG_USEC,
        WATCHDOG_PID: env.WATCHDOG_PID,
      },
    );
  }
  if (rc === 0) return disabledWatchdog();
  const timeoutUsec = BigInt(out[0]);
  // At least 1 ms: setInterval(0) would spin, and a sub-millisecond WatchdogSec= is not real. At
  // most 2^31−1 ms (~24.8 days): Node runs a longer interval every millisecond.
  const pingIntervalMs = Math.min(2 ** 31 - 1, Math.max(1, Number(timeoutUsec / 2000n)));
  let timer: NodeJS.Timeout | undefined;

  return {
    enabled: true,
    timeoutUsec,
    pingIntervalMs,
    get running() {
      return timer !== undefined;
    },
    start() {
      if (timer !== undefined) return;
      notifier.watchdogPing();
      timer = setInterval(() => notifier.watchdogPing(), pingIntervalMs);
      // The watchdog alone must not keep the process alive once its servers have closed.
      timer.unref();
    },
    stop() {
      if (timer === undefined) return;
      clearInterval(timer);
      timer = undefined;
    },
  };
}

function disabledWatchdog(): Watchdog {
  return {
    enabled: false,
    timeoutUsec: 0n,
    pingIntervalMs: 0,
    running: false,
    start() {},
    stop() {},
  };
}

/**
 * The libsystemd functions seawall calls, bound once per process through koffi.
 *
 * libsystemd0 ships only the `libsystemd.so.0` soname (the unversioned `.so` comes with
 * libsystemd-dev), so that is the name loaded. Each binding is looked up here, once, so callers
 * on the hot path never resolve symbols.
 */
import { constants } from 'node:os';
import koffi, { type KoffiFunc } from 'koffi';
import { SystemdError } from './errors.js';

/** The soname of libsystemd in Debian's libsystemd0 package. */
export const LIBSYSTEMD_SONAME = 'libsystemd.so.0';

/** One element of the `struct iovec` array that sd_journal_sendv(3) takes. */
export interface IoVec {
  iov_base: string;
  iov_len: number;
}

/** The bound functions. Return values are those of the C API: negative errno on failure. */
export interface Libsystemd {
  /** sd_notify(3); `.async` runs it on a thread of libuv's pool. */
  readonly sdNotify: KoffiFunc<(unsetEnvironment: number, state: string) => number>;
  /** sd_watchdog_enabled(3); `usec` receives WATCHDOG_USEC. */
  readonly sdWatchdogEnabled: (unsetEnvironment: number, usec: [number | bigint]) => number;
  /** sd_listen_fds(3). */
  readonly sdListenFds: (unsetEnvironment: number) => number;
  /** sd_is_socket_unix(3): > 0 when `fd` is an AF_UNIX socket of `type`, listening if asked. */
  readonly sdIsSocketUnix: (
    fd: number,
    type: number,
    listening: number,
    path: null,
    length: number,
  ) => number;
  /** sd_journal_sendv(3); `.async` runs it on a thread of libuv's pool. */
  readonly sdJournalSendv: KoffiFunc<(iov: IoVec[], n: number) => number>;
}

// koffi type names are process-global; an anonymous struct cannot collide with kvm/'s types.
const IOVEC = koffi.struct({ iov_base: 'const char *', iov_len: 'size_t' });

const cache = new Map<string, Libsystemd | SystemdError>();

function bind(soname: string): Libsystemd {
  const lib = koffi.load(soname);
  return {
    sdNotify: lib.func('int sd_notify(int unset_environment, const char *state)'),
    sdWatchdogEnabled: lib.func('int sd_watchdog_enabled(int unset_environment, _Out_ uint64_t *usec)'),
    sdListenFds: lib.func('int sd_listen_fds(int unset_environment)'),
    sdIsSocketUnix: lib.func(
      'int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)',
    ),
    sdJournalSendv: lib.func('sd_journal_sendv', 'int', [koffi.pointer(IOVEC), 'int']),
  };
}

/**
 * Loads libsystemd once per soname. A failure is remembered too, so a host without libsystemd
 * pays for the failed dlopen(3) once.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_UNAVAILABLE` when the library or a symbol is missing.
 */
export function loadLibsystemd(soname: string = LIBSYSTEMD_SONAME): Libsystemd {
  let entry = cache.get(soname);
  if (entry === undefined) {
    try {
      entry = bind(soname);
    } catch (err) {
      entry = new SystemdError(
        'SEAWALL_SYSTEMD_UNAVAILABLE',
        `cannot load ${soname}: ${(err as Error).message}`,
        {
          library: soname,
        },
      );
    }
    cache.set(soname, entry);
  }
  if (entry instanceof SystemdError) throw entry;
  return entry;
}

/** Like {@link loadLibsystemd} but returns the error instead of throwing it. */
export function tryLoadLibsystemd(soname: string = LIBSYSTEMD_SONAME): Libsystemd | SystemdError {
  try {
    return loadLibsystemd(soname);
  } catch (err) {
    if (err instanceof SystemdError) return err;
    throw err;
  }
}

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** Symbolic name of a negative errno returned by libsystemd, e.g. -111 → `ECONNREFUSED`. */
export function errnoName(negativeErrno: number): string {
  return errnoNames.get(-negativeErrno) ?? `errno ${-negativeErrno}`;
}

/**
 * libsystemd reads NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS … with getenv(3), i.e. from the
 * process environment. A factory that accepts an `env` object for testability must refuse one
 * that names something else, or libsystemd would silently act on a different socket.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_ENV_MISMATCH`
 */
export function assertProcessEnvironment(env: NodeJS.ProcessEnv, names: readonly string[]): void {
  if (env === process.env) return;
  for (const name of names) {
    if (env[name] !== undefined && env[name] !== process.env[name]) {
      throw new SystemdError(
        'SEAWALL_SYSTEMD_ENV_MISMATCH',
        `${name} in the given env differs from the process environment libsystemd reads`,
        { variable: name },
      );
    }
  }
}

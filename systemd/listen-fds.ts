/**
 * Socket activation: the listening sockets systemd passes in (sd_listen_fds(3)), by name.
 *
 * seawall.socket names its fd `plugin`, seawall-control.socket `control` and seawall-attach.socket
 * (a SOCK_SEQPACKET one) `attach` (FileDescriptorName= in systemd.socket(5) names every fd of one
 * unit alike, hence a unit each). With socket activation the listening sockets outlive daemon
 * restarts, so plugins that connect while the daemon restarts wait in the backlog instead of
 * failing, and each socket gets its owner, group and mode from its unit.
 */
import { SystemdError } from './errors.js';
import { assertProcessEnvironment, errnoName, LIBSYSTEMD_SONAME, loadLibsystemd } from './libsystemd.js';

/** SD_LISTEN_FDS_START from sd-daemon.h: passed fds begin at 3. */
export const SD_LISTEN_FDS_START = 3;

/** The kinds of Unix socket a unit may pass: ListenStream= and ListenSequentialPacket=. */
export type ListenSocketType = 'stream' | 'seqpacket';

/** One passed file descriptor and its FileDescriptorName=. */
export interface ListenFd {
  readonly fd: number;
  /** The name from LISTEN_FDNAMES, or `unknown` when none was given (sd_listen_fds_with_names(3)). */
  readonly name: string;
  readonly type: ListenSocketType;
}

/** The passed sockets. Empty when the process was not socket-activated. */
export interface ListenFds {
  /** Every passed fd in order; {@link pickListenFds} takes them by name. */
  readonly all: readonly ListenFd[];
}

/** Options for {@link takeListenFds}. */
export interface ListenFdsOptions {
  /** The library to load; only tests change it. */
  library?: string;
}

/** SOCK_STREAM and SOCK_SEQPACKET from <sys/socket.h> (1 and 5 on Linux, except MIPS). */
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
/** The unit file line that makes each kind, for messages. */
const LISTEN_LINE: Readonly<Record<ListenSocketType, string>> = {
  stream: 'ListenStream=',
  seqpacket: 'ListenSequentialPacket=',
};

const ACTIVATION_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'] as const;

/**
 * Takes the sockets passed by the service manager, once. Like sd_listen_fds(3) with
 * `unset_environment` set, it removes LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES so that child
 * processes (migration hooks) do not believe the sockets are theirs; a second call returns an
 * empty result. The fds get FD_CLOEXEC from libsystemd for the same reason.
 *
 * Without LISTEN_FDS, or when LISTEN_PID names another process, the result is empty.
 *
 * Every passed fd must be a listening AF_UNIX stream or sequential-packet socket: a socket unit with
 * ListenStream= on an IP port would otherwise hand the control commands (status, events, why) to
 * the network, and a datagram socket would fail later with an opaque EINVAL. Which kind each name
 * must be is {@link pickListenFds}'s check.
 *
 * @throws {SystemdError} `SEAWALL_SYSTEMD_LISTEN_FDS_INVALID` for malformed variables or a passed
 *   fd that is not a listening Unix stream or sequential-packet socket;
 *   `SEAWALL_SYSTEMD_UNAVAILABLE` when sockets were passed but libsystemd is missing.
 */
export function takeListenFds(
  env: NodeJS.ProcessEnv = process.env,
  options: ListenFdsOptions = {},
): ListenFds {
  if (env.LISTEN_FDS === undefined) return { all: [] };
  assertProcessEnvironment(env, ACTIVATION_VARIABLES);
  // Read before sd_listen_fds(), which unsets it: libsystemd 252 parses names only in
  // sd_listen_fds_with_names(), whose char** result would need freeing through koffi.
  const names = env.LISTEN_FDNAMES;
  const lib = loadLibsystemd(options.library ?? LIBSYSTEMD_SONAME);
  const n = lib.sdListenFds(1);
  for (const name of ACTIVATION_VARIABLES) delete env[name];
  if (n < 0) {
    throw new SystemdError('SEAWALL_SYSTEMD_LISTEN_FDS_INVALID', `sd_listen_fds failed: ${errnoName(n)}`, {
      errno: errnoName(n),
    });
  }
  const nameList = names === undefined ? [] : names.split(':');
  // sd_listen_fds_with_names(3): a LISTEN_FDNAMES whose count differs from LISTEN_FDS is an
  // error there; the fds are still ours (and already CLOEXEC), so keep them and name them unknown.
  const named = nameList.length === n;
  const all: ListenFd[] = [];
  for (let i = 0; i < n; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    const name = (named ? nameList[i] : undefined) || 'unknown';
    let type: ListenSocketType = 'stream';
    if (lib.sdIsSocketUnix(fd, SOCK_STREAM, 1, null, 0) <= 0) {
      if (lib.sdIsSocketUnix(fd, SOCK_SEQPACKET, 1, null, 0) <= 0) {
        throw new SystemdError(
          'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID',
          `passed fd ${fd} (${name}) is not a listening Unix stream or sequential-packet socket; ` +
            "seawall's socket units use ListenStream= (ListenSequentialPacket= for the attach socket) " +
            'with a path',
          { fd, name },
        );
      }
      type = 'seqpacket';
    }
    all.push({ fd, name, type });
  }
  return { all };
}

/**
 * The passed fds a service serves, by name (FileDescriptorName=), each of the kind `wanted` gives
 * it; a single fd with none of the names (systemd-socket-activate without --fdname) is the first
 * name's. Any other fd is refused: left unused, its socket would take connections nobody answers
 * while the service bound its configured paths instead, and the two would collide. So is a named
 * fd of the wrong kind (served, its clients would fail on every message) and a second fd of a name.
 */
export function pickListenFds(
  fds: ListenFds,
  wanted: Readonly<Record<string, ListenSocketType>>,
): Map<string, number> {
  const names = Object.keys(wanted);
  const lone = fds.all.length === 1 && !names.includes(fds.all[0]?.name ?? '');
  const picked = new Map<string, number>();
  const unused: ListenFd[] = [];
  for (const f of fds.all) {
    const name = lone ? names[0] : f.name;
    const type = name === undefined ? undefined : wanted[name];
    if (name === undefined || type === undefined) {
      unused.push(f);
      continue;
    }
    const which = `passed fd ${f.fd} (${f.name === name ? name : `${f.name}, taken as ${name}`})`;
    if (picked.has(name)) {
      throw new SystemdError(
        'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID',
        `${which} is a second socket of that name: each of ${names.join(', ')} is one socket`,
        { fd: f.fd, name: f.name },
      );
    }
    if (f.type !== type) {
      throw new SystemdError(
        'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID',
        `${which} is a ${f.type} socket; the ${name} socket is made with ${LISTEN_LINE[type]} ` +
          `(${LISTEN_LINE[f.type]} was used)`,
        { fd: f.fd, name: f.name },
      );
    }
    picked.set(name, f.fd);
  }
  if (unused.length > 0) {
    const list = unused.map((f) => `fd ${f.fd} (${f.name})`).join(', ');
    throw new SystemdError(
      'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID',
      `passed ${list} not used: name each socket with FileDescriptorName=, one of ${names.join(', ')}`,
      { fds: unused.map((f) => f.fd), names: unused.map((f) => f.name) },
    );
  }
  return picked;
}

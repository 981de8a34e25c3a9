/**
 * The listening sockets a service manager passes the daemon (socket activation), taken by name,
 * and what is told of a configured path one of them overrides.
 */
import { resolve } from 'node:path';
import { defaultAttachSocket } from '../attach/index.js';
import { boundSocketPath, SOCKET_PATH_MAX, unusableSocketPathBytes } from '../kvm/index.js';
import { type ListenSocketType, pickListenFds, takeListenFds } from '../systemd/index.js';
import type { DaemonConfig } from './config.js';
import { DaemonError } from './errors.js';

/**
 * The sockets a unit may pass the daemon, by FileDescriptorName=, and the kind of each; a lone
 * unnamed one (systemd-socket-activate without --fdname) is the first, the plugin socket.
 */
export const LISTEN_FDS: Readonly<Record<string, ListenSocketType>> = {
  plugin: 'stream',
  control: 'stream',
  attach: 'seqpacket',
};

/**
 * The passed sockets by name (none when not socket-activated). Each must be bound to a path: a
 * socket in the abstract namespace has no file, so no owner or mode keeps anyone out, and the
 * control socket answers any local user's reads, the attach socket any user's connections.
 */
export function takeDaemonSockets(env: NodeJS.ProcessEnv = process.env): Map<string, number> {
  const picked = pickListenFds(takeListenFds(env), LISTEN_FDS);
  for (const [name, fd] of picked) {
    if (boundSocketPath(fd) !== null) continue;
    throw new DaemonError(
      'SEAWALL_DAEMON_CONFIG',
      `passed fd ${fd} (${name}) is bound to no path (an abstract or unnamed socket), which no file ` +
        'mode protects: give its unit a path under /run/seawall',
      { fd, name },
    );
  }
  return picked;
}

/**
 * One line for each passed socket whose path differs from the one configured for it (`configured`,
 * by name; null or absent when none was given): the passed one is served, and the configured one
 * is neither bound nor removed. Said at start, beside the sockets' own lines, so that an operator
 * who set a path and finds nothing there learns why from the journal.
 */
export function overriddenSockets(
  passed: ReadonlyMap<string, number>,
  configured: Readonly<Record<string, string | null | undefined>>,
  pathOf: (fd: number) => string | null = boundSocketPath,
): string[] {
  const lines: string[] = [];
  for (const [name, fd] of passed) {
    const given = configured[name];
    const path = pathOf(fd);
    if (given == null || path === null || resolve(given) === resolve(path)) continue;
    lines.push(
      `${name} socket: the configured ${given} is not used: socket activation passed ${path} (fd ${fd}), ` +
        'which is served',
    );
  }
  return lines;
}

/**
 * Checks every socket path the daemon will bind — the configured ones no passed socket replaces —
 * before it makes anything: a path too long for a socket is refused with its length while the
 * state directory, the store and the sockets' directories are still untouched.
 */
export function checkSocketPaths(config: DaemonConfig, activated: ReadonlyMap<string, number>): void {
  const pluginFd = activated.get('plugin');
  if (pluginFd === undefined) checkPath(config.socket, 'the plugin socket', 'socket (--socket)');
  if (!activated.has('control'))
    checkPath(config.controlSocket, 'the control socket', 'controlSocket (--control-socket)');
  if (!config.attach.enabled || activated.has('attach')) return;
  // Beside the plugin socket the daemon serves: a passed one's path comes from the kernel.
  const plugin = pluginFd === undefined ? config.socket : boundSocketPath(pluginFd);
  if (config.attach.socket !== undefined)
    checkPath(config.attach.socket, 'the attach socket', 'attach.socket');
  else if (plugin !== null)
    checkPath(
      defaultAttachSocket(plugin),
      'the attach socket (named after the plugin socket)',
      'attach.socket (or a shorter plugin socket path)',
    );
}

/** A socket path no socket can have, refused as the configuration's fault, naming the setting. */
function checkPath(path: string, what: string, setting: string): void {
  const bytes = unusableSocketPathBytes(path);
  if (bytes === null) return;
  throw new DaemonError(
    'SEAWALL_DAEMON_CONFIG',
    bytes === 0
      ? `${what} path is empty; set ${setting}`
      : `${what} path ${path} is ${bytes} bytes, more than the ${SOCKET_PATH_MAX} a Unix socket's path holds; set ${setting}`,
    { path },
  );
}

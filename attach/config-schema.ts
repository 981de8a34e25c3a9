/**
 * The `attach:` section of the daemon config (daemon/config.ts adds it to ConfigSchema), and how
 * the attach server's options follow from it and from the host probe.
 */
import { basename, dirname, join } from 'node:path';
import * as z from 'zod';
import { defaultVcpuMmapSize, probeHost } from '../kvm/index.js';
import type { AttachServerOptions } from './attach-server.js';
import { AttachError } from './errors.js';

/**
 * A socket file's mode, as a quoted octal string (`'0660'`). Unquoted, YAML 1.2 reads `0660` as the
 * decimal number 660, which the error says rather than only "expected string".
 */
export const SocketModeSchema = z
  .string({
    error: (issue) =>
      typeof issue.input === 'number'
        ? `expected a quoted octal mode such as '0660', got the number ${issue.input} (YAML reads an unquoted 0660 as the number 660)`
        : undefined,
  })
  .regex(/^0?[0-7]{3}$/, { error: "expected an octal mode such as '0660'" })
  .default('0660');

export const AttachConfigSchema = z
  .strictObject({
    /** false: no attach socket; events are decided on the plugin's copy alone. */
    enabled: z.boolean().default(true),
    /** Socket path; default `attach.sock` beside the plugin socket. */
    socket: z.string().min(1).optional(),
    socketMode: SocketModeSchema,
    maxConnections: z.number().int().positive().default(1024),
    /**
     * Attached vCPUs, all sessions together: each takes one of the daemon's fds and one of its
     * vm.max_map_count mappings (65530 by default), past which every mmap in the daemon fails.
     * 16,384 is about a quarter of them (docs/actions.md "vCPU attachment").
     */
    maxVcpus: z.number().int().positive().default(16_384),
    /** A connection that attaches nothing within this time is closed (a timer: at most 2^31−1). */
    idleMs: z
      .number()
      .int()
      .positive()
      .max(2 ** 31 - 1)
      .default(10_000),
    /**
     * Accept memfd stand-ins (sealed against shrinking) in place of KVM vCPU fds: for tests, the
     * simulator and hosts without /dev/kvm. Real vCPU fds are always accepted.
     */
    allowStandIns: z.boolean().default(false),
  })
  .prefault({});
export type AttachConfig = z.infer<typeof AttachConfigSchema>;

/** The default attach socket: `attach.sock` in the plugin socket's directory. */
export function defaultAttachSocket(pluginSocket: string): string {
  // plugin.sock → attach.sock beside it; any other name gets its own (vm1.sock → vm1-attach.sock),
  // so two daemons whose plugin sockets share a directory do not collide.
  const name = basename(pluginSocket);
  if (name === 'plugin.sock') return join(dirname(pluginSocket), 'attach.sock');
  return join(dirname(pluginSocket), `${name.replace(/\.sock$/, '')}-attach.sock`);
}

/**
 * The kvm_run mapping length: KVM_GET_VCPU_MMAP_SIZE from /dev/kvm when this host has KVM, else
 * what an arm64 kernel would answer on this host's page size (kvm/page-size.ts).
 */
export function vcpuMmapSize(device?: string): number {
  const probe = probeHost(device === undefined ? {} : { device });
  return probe.available ? probe.vcpuMmapSize : defaultVcpuMmapSize();
}

/** Server options from the parsed config section. */
export function attachServerOptions(
  cfg: AttachConfig,
  pluginSocket: () => string | null,
  onNotice?: AttachServerOptions['onNotice'],
): AttachServerOptions {
  return {
    // Read when the server listens: the plugin socket a unit passed is known only once it is taken.
    get path() {
      if (cfg.socket !== undefined) return cfg.socket;
      const plugin = pluginSocket();
      if (plugin === null)
        throw new AttachError('SEAWALL_ATTACH_LISTEN', 'no plugin socket to put it beside yet');
      return defaultAttachSocket(plugin);
    },
    mode: Number.parseInt(cfg.socketMode, 8),
    maxConnections: cfg.maxConnections,
    idleMs: cfg.idleMs,
    maxVcpus: cfg.maxVcpus,
    allowStandIns: cfg.allowStandIns,
    mmapSize: vcpuMmapSize(),
    ...(onNotice ? { onNotice } : {}),
  };
}

/**
 * Daemon configuration: a YAML file (optional) validated by one zod schema, then command-line
 * flags on top. Every key has a default, so `seawall daemon` runs with none.
 */
import { isIPv6 } from 'node:net';
import { isAbsolute } from 'node:path';
import * as z from 'zod';
import { type ActionsConfig, ActionsConfigSchema } from '../actions/index.js';
import { type AttachConfig, AttachConfigSchema, SocketModeSchema } from '../attach/index.js';
import { tcpPeerUid } from '../kvm/index.js';
import type { MetricsServerOptions } from '../metrics/index.js';
import { readYamlFile, readYamlText } from '../policies/index.js';
import { LIMITS } from '../protocol/index.js';
import { DaemonError } from './errors.js';
import { type DaemonLog, LOG_EVENTS_PER_SECOND, Priority } from './log.js';
import { checkTrustedFile, defaultControlSocket, defaultPluginSocket, defaultStateDir } from './paths.js';

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|localhost):(\d{1,5})$/;

/** `HOST:PORT` for a TCP listener: an IPv4 address, `[IPv6]` or `localhost`, port 0–65535. */
export function isListenAddress(text: string): boolean {
  const m = LISTEN.exec(text);
  if (!m || Number(m[2]) > 65535) return false;
  const host = m[1] as string;
  // `[:]`, `[1:2]`: otherwise looked up by DNS at listen, failing the start after the store opened.
  if (host.startsWith('[')) return isIPv6(host.slice(1, -1));
  return !/^\d/.test(host) || host.split('.').every((octet) => Number(octet) < 256);
}

const listen = z
  .string()
  .refine(isListenAddress, 'host:port, e.g. 127.0.0.1:9464 or [::1]:9464 (port 0–65535)');

/** A `listen` value (`host:port`, `[v6]:port`) as the host and port to bind. */
export function listenHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i).replace(/^\[|\]$/g, ''), Number(value.slice(i + 1))];
}

/**
 * The /metrics server's options when `metrics` is a listen address: past its connection bound, a
 * scrape connection's owner is its peer's uid, asked of the kernel (kvm/tcp-peer-uid.ts); `log`
 * hears once if the kernel cannot be asked (a unit whose RestrictAddressFamilies= lacks AF_NETLINK).
 */
export function metricsServerOptions(config: DaemonConfig, log: DaemonLog): MetricsServerOptions {
  const [host, port] = listenHostPort(config.metrics || '');
  const onPeerUidFailed = (err: Error) =>
    log.log({
      message: `metrics: cannot ask the kernel who holds a /metrics connection (${err.message}); past the connection bound every local scraper is one owner`,
      priority: Priority.WARNING,
    });
  return { host, port, peerUid: tcpPeerUid, onPeerUidFailed };
}

const ConfigFields = z.strictObject({
  /** Plugin socket path (ignored under socket activation). */
  socket: z.string().min(1).optional(),
  /** Control socket path for `seawall status`, `reload`, … */
  controlSocket: z.string().min(1).optional(),
  /** Directory for the event store. */
  stateDir: z.string().min(1).optional(),
  /** Policy file; without one the built-in default decides. */
  policy: z.string().min(1).optional(),
  /** Plugin peers allowed by SO_PEERCRED; default: the daemon's own uid and root. */
  allow: z
    .strictObject({
      uids: z.array(z.number().int().nonnegative()).default([]),
      gids: z.array(z.number().int().nonnegative()).default([]),
    })
    .optional(),
  /**
   * VM ids bound to the peers that may claim them: a HELLO for an id starting with `prefix` is
   * refused unless the peer's uid (or primary gid) is listed, or is root. Ids that match no prefix
   * may be claimed by any allowed peer. The longest matching prefix decides.
   */
  vmIdOwners: z
    .array(
      z.strictObject({
        prefix: z.string().min(1).max(128),
        uids: z.array(z.number().int().nonnegative()).default([]),
        gids: z.array(z.number().int().nonnegative()).default([]),
      }),
    )
    .max(4096)
    .default([]),
  limits: z
    .strictObject({
      maxSessions: z.number().int().positive().default(1024),
      // WELCOME carries it as a u32; past a million a session's unwritten verdicts are unbounded.
      maxInFlight: z
        .number()
        .int()
        .positive()
        .max(1 << 20)
        .default(1024),
      // Below the largest valid HELLO, a conforming plugin could be refused for its labels.
      maxBody: z
        .number()
        .int()
        .min(LIMITS.largestHello)
        .max(1 << 20)
        .default(16 * 1024),
      // Unwritten bytes past which a session is no longer read. The hold also waits for the socket
      // to owe a 'drain' (its own high-water mark, 16 KiB in Node 20, reached): a smaller value
      // acts as that mark, and no value can leave a session unread (daemon/session.ts flush()).
      writeHighWater: z
        .number()
        .int()
        .min(4096)
        .default(256 * 1024),
      /** A connection that has not said HELLO this long after connecting is dropped. */
      helloTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
      /** A frame begun and not completed within this long ends the session (a dripping peer). */
      frameTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    })
    .prefault({}),
  // WELCOME carries it as a u32; a plugin waits this long on a timer (at most 2^31-1 ms in Node).
  heartbeatMs: z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1)
    .default(5000),
  /**
   * Keep the event store (default). false runs without one: no event history, and rate windows do
   * not survive restarts — for hosts where the state directory cannot be written, and benchmarks.
   */
  store: z.boolean().default(true),
  /** Event store retention (docs/operations.md "Retention"). */
  retention: z
    .strictObject({
      maxAgeDays: z.number().positive().default(90),
      maxBytes: z
        .number()
        .int()
        .min(65536)
        .default(1024 ** 3),
      // A setInterval: past 2^31-1 ms Node runs it every millisecond.
      intervalMs: z
        .number()
        .int()
        .min(1000)
        .max(2 ** 31 - 1)
        .default(600_000),
      chunkRows: z.number().int().positive().default(5000),
    })
    .prefault({}),
  /** Kill enforcement and migration hooks (docs/actions.md). */
  actions: ActionsConfigSchema,
  /** The vCPU-fd attach socket (docs/actions.md). */
  attach: AttachConfigSchema,
  /** Per-event journal entries per second; past it entries are counted and summarised. */
  logEventsPerSecond: z.number().int().positive().default(LOG_EVENTS_PER_SECOND),
  /** Prometheus endpoint, or false for none. */
  metrics: z.union([listen, z.literal(false)]).default('127.0.0.1:9464'),
  /** Socket file mode when the daemon creates the socket itself. */
  socketMode: SocketModeSchema,
});

export const ConfigSchema = ConfigFields.superRefine((config, ctx) => {
  for (const [name, hook] of Object.entries(config.actions.hooks)) {
    if (hook.type !== 'exec') continue;
    const at = ['actions', 'hooks', name];
    const program = hook.argv[0] as string;
    // Found from the daemon's working directory, where no one checked who may write.
    if (program.includes('/') && !isAbsolute(program))
      ctx.addIssue({
        code: 'custom',
        path: [...at, 'argv', 0],
        message: `'${program}' is a relative path; name the program by its absolute path, or by a bare name found on the daemon's PATH`,
      });
    // The program (a bare name) and whatever it runs would be found there, in directories no one
    // checked: another user's could hold what root's daemon runs.
    if (Object.hasOwn(hook.env, 'PATH'))
      ctx.addIssue({
        code: 'custom',
        path: [...at, 'env', 'PATH'],
        message: "an exec hook's PATH is the daemon's and cannot be set; name programs by absolute paths",
      });
  }
});
export type FileConfig = z.infer<typeof ConfigSchema>;

/** Which peers may claim VM ids starting with `prefix` (config `vmIdOwners`). */
export interface VmIdOwner {
  prefix: string;
  uids: number[];
  gids: number[];
}

/** Bounds of the plugin socket (config `limits`). */
export interface PluginLimits {
  maxSessions: number;
  maxInFlight: number;
  maxBody: number;
  writeHighWater: number;
  helloTimeoutMs: number;
  frameTimeoutMs: number;
}

export interface DaemonConfig {
  socket: string;
  controlSocket: string;
  /**
   * The plugin and control socket paths as given (option or file), null where the default is
   * used: a given one that a socket passed by the service manager overrides is told at start.
   */
  givenSockets: { plugin: string | null; control: string | null };
  stateDir: string;
  policy: string | null;
  allow: { uids: number[]; gids: number[] };
  vmIdOwners: VmIdOwner[];
  limits: PluginLimits;
  heartbeatMs: number;
  store: boolean;
  retention: { maxAgeDays: number; maxBytes: number; intervalMs: number; chunkRows: number };
  logEventsPerSecond: number;
  actions: ActionsConfig;
  attach: AttachConfig;
  metrics: string | false;
  socketMode: number;
}

export interface ConfigOverrides {
  socket?: string;
  controlSocket?: string;
  stateDir?: string;
  policy?: string;
  metrics?: string | false;
  store?: boolean;
}

/** Reads and validates a config file; every error with its key path. */
export function readConfigFile(path: string): FileConfig {
  // What it says root's daemon runs (exec hooks) and obeys: only root or this user may write it.
  checkTrustedFile(path, 'configuration');
  // A FIFO or a device named as the configuration would hold the start, or fill memory.
  const read = readYamlFile(path);
  if (!read.ok) throw new DaemonError('SEAWALL_DAEMON_CONFIG', `config: ${read.issue.message}`, { path });
  // Bounded as a policy is (aliases, nesting), and every key given once, as the value names it.
  const parsed = readYamlText(read.text, { intAsBigInt: false });
  if (!parsed.ok) {
    const lines = parsed.issues.map((i) => `  ${i.line > 0 ? `line ${i.line}: ` : ''}${i.message}`);
    throw new DaemonError('SEAWALL_DAEMON_CONFIG', `config ${path}:\n${lines.join('\n')}`, { path });
  }
  const r = ConfigSchema.safeParse(parsed.raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new DaemonError('SEAWALL_DAEMON_CONFIG', `config ${path} is invalid:\n${lines.join('\n')}`, {
      path,
    });
  }
  // An exec hook's program runs as this daemon's user: named by an absolute path, it is held to
  // the configuration's own standard. A bare name is found on the daemon's PATH, which is root's
  // (the schema refuses a relative path, and a PATH in the hook's env).
  for (const [name, hook] of Object.entries(r.data.actions.hooks))
    if (hook.type === 'exec' && isAbsolute(hook.argv[0] as string))
      checkTrustedFile(hook.argv[0] as string, `program of exec hook '${name}'`);
  return r.data;
}

export function resolveConfig(file: FileConfig | null, o: ConfigOverrides, env = process.env): DaemonConfig {
  const f = file ?? ConfigSchema.parse({});
  const uid = process.getuid?.() ?? 0;
  const allow = f.allow ?? { uids: [...new Set([uid, 0])], gids: [] };
  return {
    socket: o.socket ?? f.socket ?? defaultPluginSocket(env),
    controlSocket: o.controlSocket ?? f.controlSocket ?? defaultControlSocket(env),
    givenSockets: {
      plugin: o.socket ?? f.socket ?? null,
      control: o.controlSocket ?? f.controlSocket ?? null,
    },
    stateDir: o.stateDir ?? f.stateDir ?? defaultStateDir(env),
    policy: o.policy ?? f.policy ?? null,
    allow,
    vmIdOwners: f.vmIdOwners,
    limits: f.limits,
    heartbeatMs: f.heartbeatMs,
    store: o.store ?? f.store,
    retention: f.retention,
    logEventsPerSecond: f.logEventsPerSecond,
    actions: f.actions,
    attach: f.attach,
    metrics: o.metrics ?? f.metrics,
    socketMode: Number.parseInt(f.socketMode, 8),
  };
}

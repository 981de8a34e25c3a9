/** `seawall daemon`: runs the service in the foreground until SIGTERM/SIGINT. */
import { type Command, Option } from 'commander';
import {
  type DaemonConfig,
  type DaemonLog,
  Priority,
  readConfigFile,
  reportEarlyStartFailure,
  resolveConfig,
  Service,
} from '../../daemon/index.js';
import { clearAmbientCapabilities, exitNow } from '../../kvm/index.js';
import { JournalField, type Notifier } from '../../systemd/index.js';
import { keepRunningOnBrokenPipe } from '../broken-pipe.js';
import { CliError } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { listenValue, nonEmpty } from '../option-values.js';

interface DaemonOptions {
  config?: string;
  socket?: string;
  controlSocket?: string;
  stateDir?: string;
  policy?: string;
  metrics?: string | false;
  store: boolean;
  log: 'journal' | 'stderr' | 'auto';
  logEvents: 'each' | 'summary' | 'auto';
}

/**
 * What the command reports of a start that failed. The log has said why already: on stderr when
 * that is its target (then the line is not repeated), else in the journal, and stderr gets the
 * reason once, for whoever is at the console.
 */
function startFailed(err: unknown, log: DaemonLog): CliError {
  const reported = log.target === 'stderr';
  if (err instanceof CliError)
    return new CliError(err.exitCode === 2 ? 'usage' : 'failed', err.message, { reported });
  return new CliError('failed', `cannot start: ${(err as Error).message}`, { reported });
}

/**
 * What the log and the notifier have not handed over within `timeoutMs`: false when either still
 * holds a thread of libuv's pool in sendmsg(2) (journald, or the manager's notify socket, not read).
 */
async function drained(log: DaemonLog, notifier: Notifier, timeoutMs: number): Promise<boolean> {
  const [logged, notified] = await Promise.all([log.drain(timeoutMs), notifier.drain(timeoutMs)]);
  return logged && notified;
}

/**
 * After a failed start: lets the entry that says why reach journald, and the STATUS= the manager,
 * before the process ends. A send not taken within the deadline holds a thread that exit(3) waits
 * for (see the end of runDaemon); the process then ends with _exit(1) once the error is on stderr
 * — the timer is unref'd, so it fires only if that thread is what keeps the process alive.
 */
async function flushStartFailure(log: DaemonLog, notifier: Notifier): Promise<void> {
  if (!(await drained(log, notifier, 1000))) setTimeout(() => exitNow(1), 100).unref();
}

/**
 * SIGUSR1 and SIGUSR2 are ignored, and said so. Node answers an unhandled SIGUSR1 by opening its
 * inspector on 127.0.0.1:9229, through which any local user could run code in this process —
 * root's, which can SIGKILL VMs; SIGUSR2's default action ends the process and leaves every VM to
 * its fallback. A listener is what keeps the inspector closed, so these are installed first.
 */
function ignoreUserSignals(log: () => DaemonLog | null): void {
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const)
    process.on(signal, () =>
      log()?.notice('signal_ignored', {
        message: `${signal} ignored: seawall does not use it (SIGHUP reloads the policy, SIGTERM stops)`,
        priority: Priority.NOTICE,
        fields: { [JournalField.REASON]: 'signal_ignored' },
      }),
    );
}

async function runDaemon(opts: DaemonOptions, ctx: CliContext): Promise<number> {
  // The service's log once there is one; a signal before it is ignored without a word.
  let serviceLog: DaemonLog | null = null;
  ignoreUserSignals(() => serviceLog);
  // Its VMs outlive whoever reads its console.
  keepRunningOnBrokenPipe();
  let config: DaemonConfig;
  try {
    // CAP_KILL from the unit's AmbientCapabilities= is the daemon's, not its hooks'.
    clearAmbientCapabilities();
    const file = opts.config ? readConfigFile(opts.config) : null;
    config = resolveConfig(
      file,
      {
        socket: opts.socket,
        controlSocket: opts.controlSocket,
        stateDir: opts.stateDir,
        policy: opts.policy,
        metrics: opts.metrics,
        ...(opts.store ? {} : { store: false }),
      },
      ctx.env,
    );
  } catch (err) {
    const { log, notifier } = reportEarlyStartFailure(opts.log, err);
    await flushStartFailure(log, notifier);
    throw startFailed(err, log);
  }
  const service = new Service({
    config,
    logMode: opts.log,
    logEvents: opts.logEvents,
    announce: (line) => ctx.io.out(line),
  });
  serviceLog = service.log;
  // Signals are handled from before start-up: a SIGTERM during start stops the daemon once it is
  // up (never killing it half-started), and a SIGHUP before READY=1 — nothing to reload yet — is
  // ignored rather than left to its default action, which would terminate the process.
  let started = false;
  let stopRequested = false;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const stop = () => {
    if (stopRequested) return;
    stopRequested = true;
    if (started) service.stop().then(finished, finished);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The outcome is logged (journald, metrics) by the service; SIGHUP has no one to answer.
  process.on('SIGHUP', () => {
    // reload() contains its own failures; the catch only keeps a bug from ending the process.
    if (started && !stopRequested) service.reload().catch(() => {});
  });
  try {
    await service.start();
  } catch (err) {
    // The service has closed the levels that did start and logged why (daemon/start-failure.ts).
    await flushStartFailure(service.log, service.notifier);
    throw startFailed(err, service.log);
  }
  started = true;
  ctx.io.out(`seawall daemon ready — ${service.statusLine()}`);
  const self = process.argv[1]?.endsWith('/seawall') ? 'seawall' : `node ${process.argv[1]}`;
  // The sockets the daemon serves: under socket activation, the unit's, not the configured paths.
  const plugin = service.server.socketPath;
  const control = service.control?.socketPath;
  if (plugin) ctx.io.out(`feed it: ${self} simulate --socket ${plugin} --vms 4 --vcpus 2 --events 1000`);
  if (control) ctx.io.out(`look:    ${self} status --control-socket ${control}`);
  if (stopRequested) service.stop().then(finished, finished);
  await done;
  // The last entries (the stop's own) go to journald off the event loop, and STOPPING=1 to the
  // manager. One that is not taken holds a thread of libuv's pool in sendmsg(2), and exit(3)
  // waits for that thread: the process would hang until journald or PID 1 reads again, or
  // systemd's stop timeout. Everything else is stopped and durable by now, so it ends at once
  // instead, without them: with _exit(0), since systemd records a stop that ends in a signal as
  // a failure.
  if (!(await drained(service.log, service.notifier, 1000))) exitNow(0);
  return 0;
}

export function registerDaemon(parent: Command, ctx: CliContext): void {
  parent
    .command('daemon')
    .summary('run the daemon (built-in defaults need no root)')
    .description(
      'Runs the daemon in the foreground: SIGHUP reloads the policy, SIGTERM answers in-flight events and exits. ' +
        'Every setting has a default, so it runs with none: sockets under $XDG_RUNTIME_DIR/seawall/ (or /tmp/seawall-<uid>/), ' +
        'the store under $XDG_STATE_HOME/seawall/, the built-in policy, metrics on 127.0.0.1:9464.',
    )
    .option('--config <file>', 'YAML configuration (every key optional; flags override it)', nonEmpty)
    .option('--socket <path>', 'plugin socket (ignored under socket activation)', nonEmpty)
    .option('--control-socket <path>', 'control socket for status, events, reload …', nonEmpty)
    .option('--state-dir <dir>', 'directory of the event store', nonEmpty)
    .option('--policy <file>', 'policy file (default: the built-in policy)', nonEmpty)
    .option('--metrics <host:port>', 'Prometheus endpoint address, e.g. 127.0.0.1:9464', listenValue)
    .option('--no-metrics', 'no Prometheus endpoint')
    .option('--no-store', 'no event store (no history; rate windows do not survive restarts)')
    .addOption(
      new Option('--log <target>', 'where log entries go: journald, stderr, or journald when reachable')
        .choices(['journal', 'stderr', 'auto'])
        .default('auto'),
    )
    .addOption(
      new Option(
        '--log-events <mode>',
        'per-event entries: each event, or a summary every 10 s (auto: each when logging to journald, a summary on stderr)',
      )
        .choices(['each', 'summary', 'auto'])
        .default('auto'),
    )
    .action(act<DaemonOptions>(ctx, (opts) => runDaemon(opts, ctx)));
}

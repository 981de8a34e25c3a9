/**
 * The composition root of `seawall daemon`: starts in levels — log, metrics, policy, pipeline,
 * sockets, then READY=1 — and stops in reverse. Signals: SIGHUP reloads the policy (RELOADING=1 …
 * READY=1), SIGTERM/SIGINT stop after answering every event already received.
 * Longer than 350 lines: the start's levels and the stop's are one sequence each, read top to
 * bottom; split, the order between them (what each level needs opened before it) would be lost.
 */

import { dirname } from 'node:path';
import { type Actions, createActions } from '../actions/index.js';
import type { AttachServer } from '../attach/index.js';
import type { ReloadResult } from '../control/index.js';
import { ControlServer, serviceControlContext } from '../control/index.js';
import { thrownText } from '../errors/index.js';
import { EventBus } from '../events/index.js';
import { MetricsServer, SeawallMetrics } from '../metrics/index.js';
import { BUILTIN_POLICY_YAML, PolicyState, STATE_REBUILD_WINDOW_MS } from '../policies/index.js';
import {
  EventStore,
  Retention,
  StoreLock,
  type StoreOp,
  StoreReader,
  storePath,
  storeSink,
  WriteAhead,
} from '../store/index.js';
import { createNotifier, createWatchdog, JournalField as F, type Notifier } from '../systemd/index.js';
import { actionReporting } from './action-reporting.js';
import { createAttachServer, listenAttach } from './attach-wiring.js';
import { type DaemonConfig, metricsServerOptions } from './config.js';
import { checkSocketPaths, overriddenSockets, takeDaemonSockets } from './listen-wiring.js';
import { createDaemonLog, type DaemonLog, MessageId, Priority } from './log.js';
import { type MigrationStateHold, rememberMigrations } from './migration-state.js';
import { ensureSafeDir } from './paths.js';
import { Pipeline } from './pipeline.js';
import { PluginServer } from './plugin-server.js';
import { PolicyHolder } from './policy-holder.js';
import { BUILTIN_SHA256, builtinProvider, createPolicyLoader } from './policy-loader.js';
import { PolicyWorker } from './policy-worker.js';
import { journalSink } from './sinks/journal-sink.js';
import { metricsSink } from './sinks/metrics-sink.js';
import { PoisonedPageCounts } from './sinks/poisoned-page-counts.js';
import { reportStartFailure } from './start-failure.js';
import { type StoreReporting, storeLoadOf, storeReporting } from './store-reporting.js';
import { VERSION } from './version.js';

export interface ServiceOptions {
  config: DaemonConfig;
  log?: DaemonLog;
  logMode?: 'auto' | 'journal' | 'stderr';
  /** Per-event log entries: each, a periodic summary, or auto (each under journald). */
  logEvents?: 'each' | 'summary' | 'auto';
  /** Called, once the daemon is ready, with lines for the operator's terminal (where it listens). */
  announce?: (line: string) => void;
}

export class Service {
  readonly config: DaemonConfig;
  readonly log: DaemonLog;
  readonly bus = new EventBus();
  /** Rate and repeat-page state shared by every policy version (survives reloads). */
  readonly policyState = new PolicyState();
  readonly policy: PolicyHolder;
  readonly pipeline: Pipeline;
  readonly server: PluginServer;
  readonly metrics: SeawallMetrics | null;
  #metricsServer: MetricsServer | null = null;
  /** sd_notify(3); its {@link Notifier.drain} is awaited before the process exits. */
  readonly notifier: Notifier;
  readonly #watchdog;
  #statusTimer: NodeJS.Timeout | null = null;
  #stopping: Promise<void> | null = null;
  readonly #announce: (line: string) => void;
  /**
   * What the start has announced so far: said only once the daemon is ready, so that a start that
   * fails (an invalid policy, a socket in use) never printed a metrics URL or socket it then closed.
   */
  readonly #announced: string[] = [];
  startedAtMs = 0;
  store: EventStore | null = null;
  readonly actions: Actions;
  readonly attach: AttachServer | null;
  #retention: Retention | null = null;
  #writeAhead: WriteAhead | null = null;
  #storeLock: StoreLock | null = null;
  #migrationHold: MigrationStateHold | null = null;
  /** The control socket's server, once started. */
  control: ControlServer | null = null;
  /** Parses policy files off the event loop (policy-worker.ts). */
  readonly #policyWorker = new PolicyWorker();
  #reader: StoreReader | null = null;
  /** Store failures: counted, logged without flooding the log (store-reporting.ts). */
  readonly #storeReports: StoreReporting;
  readonly #storeError = (op: StoreOp, err: unknown) => this.#storeReports.onError(op, err);

  constructor(opts: ServiceOptions) {
    this.config = opts.config;
    this.#announce = opts.announce ?? (() => {});
    this.log =
      opts.log ??
      createDaemonLog({
        mode: opts.logMode ?? 'auto',
        events: opts.logEvents ?? 'auto',
        eventsPerSecond: opts.config.logEventsPerSecond,
      });
    // After the log: a notifier that cannot load libsystemd reports it at once.
    this.notifier = createNotifier(process.env, {
      onError: (err) => this.log.log({ message: `sd_notify: ${err.message}`, priority: Priority.WARNING }),
    });
    this.#watchdog = createWatchdog(this.notifier, process.env, {
      onError: (err) => this.log.log({ message: `watchdog: ${err.message}`, priority: Priority.WARNING }),
    });
    this.metrics = opts.config.metrics === false ? null : new SeawallMetrics({ version: VERSION });
    this.#storeReports = storeReporting(this.metrics, this.log);
    this.policy = new PolicyHolder(
      createPolicyLoader(this.policyState, this.#policyWorker, Object.keys(opts.config.actions.hooks)),
      { provider: builtinProvider(this.policyState), sha256: BUILTIN_SHA256, source: BUILTIN_POLICY_YAML },
      this.log,
      this.metrics,
    );
    this.bus.onSinkError = (sink, hook, err) => {
      this.metrics?.sinkFailure(sink);
      this.log.notice(`sink:${sink}`, {
        message: `sink ${sink} failed in ${hook}: ${(err as Error).message}`,
        priority: Priority.ERR,
      });
    };
    this.attach = createAttachServer(opts.config, () => this.server.socketPath, this.log);
    this.actions = createActions(
      opts.config.actions,
      actionReporting({ store: () => this.store, reader: () => this.#reader }, this.metrics, this.log),
    );
    this.pipeline = new Pipeline({
      ...(this.attach ? { kernelExit: this.attach.kernelExit } : {}),
      policy: () => this.policy.current,
      observe: (event) => this.policyState.observe(event),
      bus: this.bus,
      onDecideError: (err, r) =>
        this.log.log({
          message: `policy failed on an event from VM ${r.event.vm.id}; answered with the safe default: ${(err as Error).message}`,
          priority: Priority.ERR,
          fields: { [F.VM]: r.event.vm.id, [F.REASON]: 'decide_error' },
        }),
    });
    this.server = new PluginServer({
      bus: this.bus,
      pipeline: this.pipeline,
      allow: opts.config.allow,
      vmIdOwners: opts.config.vmIdOwners,
      limits: opts.config.limits,
      heartbeatMs: opts.config.heartbeatMs,
    });
  }

  /**
   * Starts level by level, then READY=1. A failed level ends the start: the reason is logged and
   * told to systemd (start-failure.ts), what is up is closed without STOPPING=1 (a later stop()
   * too: the daemon never became ready), and the error is rethrown for an exit non-zero.
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      reportStartFailure(this.log, this.notifier, err);
      this.#stopping = this.#close().catch(() => {});
      await this.#stopping;
      throw err;
    }
  }

  async #start(): Promise<void> {
    // The sockets a unit passed, and the paths of those made here, before anything is made.
    const activated = takeDaemonSockets();
    checkSocketPaths(this.config, activated);
    // Level 1: the record. The store's sink is added first: it must hold a batch before its
    // verdicts are written, and before any other sink sees it.
    if (this.config.store) {
      ensureSafeDir(this.config.stateDir, 0o700);
      const path = storePath(this.config.stateDir);
      // Before anything of the store is touched: another daemon's files are not this one's to recover.
      this.#storeLock = StoreLock.take(path);
      // Opening, migrating and recovering a large store takes a while: systemd is told to wait.
      this.notifier.extendTimeout(SLOW_STEP_USEC);
      this.store = new EventStore({ path, onError: this.#storeError });
      this.#writeAhead = new WriteAhead(this.store, {
        onError: this.#storeError,
        // A removed state directory is made again — as safely as at start — and its lock taken
        // again, before reopening.
        prepareReopen: () => {
          ensureSafeDir(this.config.stateDir, 0o700);
          this.#storeLock?.renew();
        },
        onHealth: (h) => this.#storeReports.onHealth(h),
        // One VM's flood waits for the writer thread, not every VM's verdicts.
        pressure: {
          hold: (ids) => {
            const vms = this.server.holdForStore(ids);
            this.#storeReports.onHold(vms);
            return vms.length;
          },
          release: (ids) => this.server.releaseStoreHolds(ids),
        },
      });
      const ahead = this.#writeAhead;
      this.#reader = new StoreReader(this.store, ahead);
      this.metrics?.watchStore(() => storeLoadOf(ahead));
      this.bus.add(storeSink(this.store, this.#writeAhead));
      this.#retention = new Retention(this.store, { ...this.config.retention, onError: this.#storeError });
      this.#retention.start();
      const store = this.store;
      this.policy.onLoaded = (p, source) => {
        const name = (p as { name?: unknown }).name;
        store.recordPolicy(p.version, typeof name === 'string' ? name : p.version, source);
      };
    }
    if (this.metrics) {
      this.bus.add(
        metricsSink(
          this.metrics,
          (err) => this.bus.onSinkError('metrics', 'afterReply', err),
          PoisonedPageCounts.fromStore(this.store?.queries, {}, this.#reader),
        ),
      );
      this.metrics.start();
      this.#metricsServer = new MetricsServer(this.metrics, metricsServerOptions(this.config, this.log));
      const addr = await this.#metricsServer.listen();
      this.#announced.push(
        `metrics:  http://${addr.family === 'IPv6' ? `[${addr.host}]` : addr.host}:${addr.port}/metrics`,
      );
    }
    // A VM with a live session keeps its rate/repeat history whatever other VMs do.
    this.bus.add({
      name: 'policy-state',
      sessionOpened: (s) => this.policyState.pin(s.vm.id),
      sessionClosed: (s) => this.policyState.unpin(s.vm.id),
    });
    this.bus.add(journalSink(this.log));
    this.bus.add(this.actions.sink);
    this.#migrationHold = rememberMigrations(this.config, this.actions, this.log);
    if (this.attach) this.bus.add(this.attach.sink());
    // Level 2: the policy. An invalid file at start is fatal: running with a policy nobody wrote is worse.
    await this.policy.loadInitial(this.config.policy);
    // Rate windows and repeat-page memory survive restarts: recent stored events are replayed into the
    // state after the policy load, which sizes the rate rings; one dated after now is left out, as it
    // would stay the newest time in its rate rings and push real ones out.
    const state = this.policyState;
    const now = Date.now();
    if (this.store) this.notifier.extendTimeout(SLOW_STEP_USEC);
    const windowMs = Math.max(STATE_REBUILD_WINDOW_MS, this.policy.current.stateWindowMs ?? 0);
    this.store?.queries.recentObservations(now - windowMs, (vm, timeMs, gpa) => {
      if (timeMs <= now) state.observeAt(vm, timeMs, gpa);
    });
    // Level 3: the sockets; a single unnamed fd (systemd-socket-activate without --fdname) is the plugin's.
    const { plugin, control } = this.config.givenSockets;
    for (const line of overriddenSockets(activated, { plugin, control, attach: this.config.attach.socket }))
      this.#announced.push(line);
    const pluginFd = activated.get('plugin');
    if (pluginFd !== undefined) await this.server.listen({ fd: pluginFd });
    else await this.server.listen({ path: this.config.socket, mode: this.config.socketMode });
    this.#announced.push(
      `plugin socket: ${this.server.address}${pluginFd !== undefined ? ` (fd ${pluginFd}, socket activation)` : ''}`,
    );
    listenAttach(this.attach, activated.get('attach'), (line) => this.#announced.push(line));
    this.control = new ControlServer(
      serviceControlContext({
        version: VERSION,
        startedAtMs: () => this.startedAtMs,
        sessions: () => this.server.sessions,
        pipeline: this.pipeline,
        policy: this.policy,
        store: this.store,
        reader: this.#reader,
        storeHealth: () => this.#writeAhead?.health ?? null,
        reload: () => this.reload(),
      }),
      {
        onError: (cmd, err) =>
          this.log.log({
            message: `control ${cmd} failed: ${thrownText(err)}`,
            priority: Priority.WARNING,
          }),
      },
    );
    const controlFd = activated.get('control');
    if (controlFd === undefined)
      ensureSafeDir(dirname(this.config.controlSocket), 0o755, { allowSticky: true });
    await this.control.listen(
      controlFd !== undefined ? { fd: controlFd } : { path: this.config.controlSocket },
    );
    this.#announced.push(
      `control socket: ${this.control.address}${controlFd !== undefined ? ` (fd ${controlFd}, socket activation)` : ''}`,
    );
    // Level 4: ready.
    for (const line of this.#announced.splice(0)) this.#announce(line);
    this.startedAtMs = Date.now();
    this.notifier.ready(this.statusLine());
    this.#watchdog.start();
    this.#statusTimer = setInterval(() => {
      this.notifier.status(this.statusLine());
    }, 5000);
    this.#statusTimer.unref();
    this.log.log({
      message: `seawall ${VERSION} ready: plugin socket ${this.server.address}, policy ${this.policy.current.version}`,
      priority: Priority.INFO,
      messageId: MessageId.DAEMON_STARTED,
      fields: { [F.POLICY_VERSION]: this.policy.current.version },
    });
  }

  statusLine(): string {
    return `${this.server.sessions.length} VM sessions, ${this.pipeline.decided} events decided, policy ${this.policy.current.version}`;
  }

  /** SIGHUP / `seawall reload`: the new policy or the old one, never a mix; the result says which. */
  async reload(): Promise<ReloadResult> {
    this.notifier.reloading();
    try {
      return await this.policy.reload(this.config.policy);
    } finally {
      // After STOPPING=1, a READY=1 would tell systemd the daemon is running again.
      if (this.#stopping === null) this.notifier.ready(this.statusLine());
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#watchdog.stop();
    this.notifier.stopping('answering in-flight events, then exiting');
    this.log.log({
      message: 'seawall stopping',
      priority: Priority.INFO,
      messageId: MessageId.DAEMON_STOPPING,
    });
    await this.#close();
  }

  /** Closes every level in reverse order of start; each copes with never having been started. */
  async #close(): Promise<void> {
    if (this.#statusTimer) clearInterval(this.#statusTimer);
    await this.control?.close();
    // Answers every event already received; its last batch goes into the store.
    await this.server.stop();
    this.attach?.close();
    // Hooks still running are killed or aborted and their outcomes reported now, while the store
    // still takes rows: the write-ahead log below flushes them before the store closes.
    await this.actions.close();
    this.#migrationHold?.release();
    this.policy.close();
    this.#policyWorker.close();
    await this.#metricsServer?.close();
    this.metrics?.stop();
    await this.#retention?.stop();
    this.#reader?.close();
    this.#writeAhead?.close();
    this.store?.close();
    this.#storeLock?.release();
    this.log.close();
  }
}

/** What each slow start-up step asks of systemd's start timeout (EXTEND_TIMEOUT_USEC). */
const SLOW_STEP_USEC = 120_000_000;

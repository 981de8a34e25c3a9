/**
 * The policy in force, swapped atomically. Each event reads `current` once, so it is decided by
 * exactly one version; a reload either replaces it whole or leaves it untouched (an invalid file
 * is logged with its errors, at most MAX_REPORTED_ISSUES of them (policy-worker.ts), and counted,
 * and the last good policy keeps serving).
 *
 * Reloads are serialized: a reload starts only when the one before it has finished, so the reply
 * of the last one always names the policy that is live — two racing reloads can no longer leave
 * the older file in force. Every failure, thrown or returned, stays a failed reload.
 */

import type { ReloadResult } from '../control/index.js';
import { thrownText } from '../errors/index.js';
import type { SeawallMetrics } from '../metrics/index.js';
import type { DecisionProvider } from '../policies/index.js';
import type { PolicyText } from '../store/index.js';
import { JournalField as F } from '../systemd/index.js';
import { DaemonError } from './errors.js';
import { type DaemonLog, MessageId, Priority } from './log.js';

export type PolicyLoadResult =
  | {
      ok: true;
      provider: DecisionProvider;
      /** sha256 of the file's bytes */
      sha256: string;
      /** The YAML as read, kept with the version so later answers can name its rules. */
      source: string;
    }
  | { ok: false; issues: string[] };

/** Told of every policy put in force (at start and on reload): its version and YAML. */
export type PolicyLoadedHook = (provider: DecisionProvider, source: string) => void;
export type PolicyLoader = (path: string) => Promise<PolicyLoadResult>;

export class PolicyHolder {
  #current: DecisionProvider;
  /** The YAML `#current` was compiled from (`seawall why` compiles it again beside the store). */
  #currentSource: string;
  readonly #load: PolicyLoader;
  readonly #builtin: DecisionProvider;
  readonly #log: DaemonLog;
  readonly #metrics: SeawallMetrics | null;
  reloads = 0;
  failedReloads = 0;
  /** Set when the daemon stops: a reload it cuts short is not the policy's failure. */
  #closed = false;
  lastReloadAtMs = 0;

  readonly #builtinSha256: string;
  /** The reload in progress (or the last one); the next waits for it. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #builtinSource: string;
  /** Set by the composition root once the store is open. */
  onLoaded: PolicyLoadedHook = () => {};

  constructor(
    load: PolicyLoader,
    builtin: { provider: DecisionProvider; sha256: string; source: string },
    log: DaemonLog,
    metrics: SeawallMetrics | null,
  ) {
    this.#load = load;
    this.#builtin = builtin.provider;
    this.#builtinSha256 = builtin.sha256;
    this.#builtinSource = builtin.source;
    this.#current = builtin.provider;
    this.#currentSource = builtin.source;
    this.#log = log;
    this.#metrics = metrics;
  }

  get current(): DecisionProvider {
    return this.#current;
  }

  get currentText(): PolicyText {
    return { version: this.#current.version, source: this.#currentSource };
  }

  #put(provider: DecisionProvider, sha256: string, source: string): void {
    this.#current = provider;
    this.#currentSource = source;
    this.#metrics?.policyReload(true, provider.version, sha256);
    this.onLoaded(provider, source);
  }

  /** At start: an invalid policy file stops the daemon (DaemonError), a missing path means the built-in. */
  async loadInitial(path: string | null): Promise<void> {
    if (path === null) {
      this.#put(this.#builtin, this.#builtinSha256, this.#builtinSource);
      return;
    }
    const r = await this.#safeLoad(path);
    if (!r.ok)
      throw new DaemonError(
        'SEAWALL_DAEMON_POLICY',
        `policy ${path} is invalid:\n${r.issues.map((i) => `  ${i}`).join('\n')}`,
        { path },
      );
    this.#put(r.provider, r.sha256, r.source);
  }

  /** The daemon is stopping: a reload under way (its worker ended) is reported as cut short. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Reads, validates and compiles `path` off to the side, then swaps it in with one assignment:
   * events decided before the swap used the old version, events after it the new one.
   */
  reload(path: string | null): Promise<ReloadResult> {
    const next = this.#queue.then(() => this.#reload(path));
    this.#queue = next.catch(() => {});
    return next;
  }

  /** The loader's answer; a loader that throws is a failed load, never an unhandled rejection. */
  async #safeLoad(path: string): Promise<PolicyLoadResult> {
    try {
      return await this.#load(path);
    } catch (err) {
      return { ok: false, issues: [`${path}: ${thrownText(err)}`] };
    }
  }

  async #reload(path: string | null): Promise<ReloadResult> {
    this.lastReloadAtMs = Date.now();
    const r: PolicyLoadResult =
      path === null
        ? { ok: true, provider: this.#builtin, sha256: this.#builtinSha256, source: this.#builtinSource }
        : await this.#safeLoad(path);
    if (!r.ok && this.#closed) {
      const issues = ['the daemon is stopping: the reload was cut short'];
      this.#log.log({
        message: `policy reload cut short, keeping ${this.#current.version}: the daemon is stopping`,
        priority: Priority.INFO,
        fields: { [F.POLICY_VERSION]: this.#current.version, [F.REASON]: 'daemon_stopping' },
      });
      return { ok: false, version: this.#current.version, issues };
    }
    if (!r.ok) {
      this.failedReloads++;
      this.#metrics?.policyReload(false);
      this.#log.log({
        message: `policy reload failed, keeping ${this.#current.version}: ${r.issues.join('; ')}`,
        priority: Priority.ERR,
        messageId: MessageId.POLICY_RELOAD_FAILED,
        fields: { [F.POLICY_VERSION]: this.#current.version, [F.REASON]: 'policy_invalid' },
      });
      return { ok: false, version: this.#current.version, issues: r.issues };
    }
    const previous = this.#current.version;
    this.reloads++;
    this.#put(r.provider, r.sha256, r.source);
    this.#log.log({
      message: `policy reloaded: ${previous} → ${r.provider.version}`,
      priority: Priority.NOTICE,
      messageId: MessageId.POLICY_RELOADED,
      fields: { [F.POLICY_VERSION]: r.provider.version },
    });
    return { ok: true, version: r.provider.version, issues: [] };
  }
}

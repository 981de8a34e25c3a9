/**
 * Reading, parsing and validating a policy file on a worker thread, so that a reload never stalls
 * the verdicts of running VMs: a 10 MB policy of 200,000 GPA ranges takes seconds to parse. The
 * worker also does the expensive part of compiling — the version hash of the whole document and
 * each rule's GPA ranges sorted and packed (policies/gpa-ranges.ts) — and hands the packed ranges
 * over as transferred buffers. What is left for the event loop is a small document to compile.
 *
 * One worker, reused across loads, with its own heap limit: a document that would exhaust memory kills the
 * worker, not the daemon, and the load fails with that reason.
 */
import { createHash } from 'node:crypto';
import { serialize } from 'node:v8';
import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';
import { thrownText } from '../errors/index.js';
import {
  formatPath,
  matchTerms,
  type PolicyDocument,
  packGpaRanges,
  parsePolicy,
  policyVersionOf,
  readYamlFile,
  unconfiguredHooks,
} from '../policies/index.js';
import { IdleTimer, startThread, yieldToVerdictPath } from '../store/index.js';
import { checkTrustedFile } from './paths.js';

/**
 * Most errors a refused policy reports: the reload's control answer and its log entry are made on
 * the event loop that answers vCPUs, and a 3.8 MB policy of 50,000 bad rules has 50,000 errors (a
 * 7 MB answer, cloned from this thread first). `seawall policy check` lists every one.
 */
export const MAX_REPORTED_ISSUES = 100;

/**
 * The first MAX_REPORTED_ISSUES of a file's errors, each made a line (only those: a file may have
 * 50,000), and a line saying how many more there are.
 */
function reportedIssues<T>(path: string, all: readonly T[], line: (issue: T) => string): string[] {
  const shown = all.slice(0, MAX_REPORTED_ISSUES).map(line);
  if (all.length <= MAX_REPORTED_ISSUES) return shown;
  return [
    ...shown,
    `… and ${all.length - MAX_REPORTED_ISSUES} more errors: seawall policy check ${path} lists every one`,
  ];
}

/** What a load produces: the document (GPA lists removed) and the work done on it, or the issues. */
export type WorkerLoad =
  | {
      ok: true;
      doc: PolicyDocument;
      version: string;
      /** sha256 of the file's bytes. */
      sha256: string;
      /** The YAML as read, kept with the version (seawall why names its rules later). */
      source: string;
      /** Packed GPA ranges by rule index. */
      gpa: (BigUint64Array | undefined)[];
      /**
       * `doc.rules`, serialized (v8.serialize) in slices (sliceRules): the document itself
       * comes with none, so that the event loop takes the rules in a task per slice, not in one.
       */
      rules: Uint8Array[];
    }
  | { ok: false; issues: string[] };

interface PolicyWorkerData {
  kind: 'seawall-policy';
}

/** Heap for one load: several times what the largest policy we measured needs (~10 MB of YAML). */
const WORKER_HEAP_MB = 2048;
/**
 * Rules the event loop takes in one task at a reload (daemon/policy-loader.ts): a slice is
 * deserialized and compiled in a median of under 2 ms on the machine of docs/performance.md
 * (bench/policy-reload.ts).
 */
export const RULES_PER_SLICE = 200;
/**
 * Match terms (matchTerms) — label keys, `{in: [...]}` values and the values of listed matchers
 * such as `vcpu: [...]`, aliases expanded — a slice carries at most, unless one rule alone has
 * more (it is then a slice of its own): each key is a matcher to build and each value a set entry,
 * and 200 rules of many labels or long lists each would otherwise be one long task (100 rules
 * aliasing one `vcpu` list of 30,000 were one slice of 17 MB).
 */
export const TERMS_PER_SLICE = 1_000;

/** `rules` in slices of at most RULES_PER_SLICE rules and TERMS_PER_SLICE match terms. */
export function sliceRules<T>(rules: readonly T[]): T[][] {
  const slices: T[][] = [];
  let slice: T[] = [];
  let terms = 0;
  for (const rule of rules) {
    const n = matchTerms(rule);
    if (slice.length > 0 && (slice.length >= RULES_PER_SLICE || terms + n > TERMS_PER_SLICE)) {
      slices.push(slice);
      slice = [];
      terms = 0;
    }
    slice.push(rule);
    terms += n;
  }
  if (slice.length > 0) slices.push(slice);
  return slices;
}
/** A load that takes longer than this is abandoned (the worker is terminated). */
export const POLICY_LOAD_TIMEOUT_MS = 300_000;

/** A load asked of the worker: the file, and the migrate hooks the daemon has (`actions.hooks`). */
interface LoadRequest {
  path: string;
  hooks: readonly string[];
}

async function load({ path, hooks }: LoadRequest): Promise<{ result: WorkerLoad; transfer: ArrayBuffer[] }> {
  // A policy another local user could write would let them kill every VM at the next reload.
  try {
    checkTrustedFile(path, 'policy');
  } catch (err) {
    return { result: { ok: false, issues: [(err as Error).message] }, transfer: [] };
  }
  // A FIFO or a device at the path is refused at once, not read until the load's timeout.
  const read = readYamlFile(path);
  if (!read.ok) return { result: { ok: false, issues: [read.issue.message] }, transfer: [] };
  const text = read.text;
  const r = parsePolicy(text, path);
  if (!r.ok) {
    const issues = reportedIssues(
      path,
      r.issues,
      (i) => `${path}:${i.line}: ${i.path || '(top)'}: ${i.message} [${i.code}]`,
    );
    return { result: { ok: false, issues }, transfer: [] };
  }
  const doc = r.policy;
  // Checked here, where the YAML's lines are known: a hook the daemon lacks is named at its line.
  const unknown = unconfiguredHooks(doc, hooks);
  if (unknown.length > 0) {
    const issues = reportedIssues(
      path,
      unknown,
      (u) => `${path}:${r.lineOf(u.path)}: ${formatPath(u.path)}: ${u.message} [${u.code}]`,
    );
    return { result: { ok: false, issues }, transfer: [] };
  }
  const version = policyVersionOf(doc);
  const gpa = doc.rules.map((rule) => (rule.match.gpa ? packGpaRanges(rule.match.gpa) : undefined));
  for (const rule of doc.rules) delete rule.match.gpa;
  const sha256 = createHash('sha256').update(text).digest('hex');
  const rules = sliceRules(doc.rules).map((slice) => serialize(slice));
  const transfer = gpa
    .filter((g): g is BigUint64Array => g !== undefined)
    .map((g) => g.buffer as ArrayBuffer);
  return {
    result: { ok: true, doc: { ...doc, rules: [] }, version, sha256, source: text, gpa, rules },
    transfer,
  };
}

if (!isMainThread && (workerData as PolicyWorkerData | null)?.kind === 'seawall-policy') {
  // Compiling a 10 MB policy takes seconds of CPU; verdicts go first (store/thread-priority.ts).
  yieldToVerdictPath();
  // One request at a time (the policy holder serializes loads), answered in order.
  parentPort?.on('message', (request: LoadRequest) => {
    load(request).then(
      ({ result, transfer }) => parentPort?.postMessage(result, transfer),
      (err: unknown) =>
        parentPort?.postMessage({ ok: false, issues: [`${request.path}: ${thrownText(err)}`] }),
    );
  });
}

// Compiled, the worker is policy-worker.js: this module in tsc's tree, its own file beside the CLI
// in dist/bin/ (scripts/bundle.mjs), so it is named, not taken from import.meta.url.
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './policy-worker.ts' : './policy-worker.js',
  import.meta.url,
);

function startWorker(data: PolicyWorkerData): Worker {
  return startThread(WORKER_URL, {
    workerData: data,
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
  });
}

/**
 * How long the worker is kept after a load for the next one: a few reloads in a row (an operator
 * editing a policy) start it once, and a daemon in service does not keep its V8 heap (~15–20 MB of
 * resident set) between reloads days apart. Starting one costs the module graph's load, off the
 * event loop.
 */
export const POLICY_WORKER_IDLE_MS = 10_000;

/**
 * The worker, started on first use and kept for `idleMs` after each load. A load that fails the
 * worker itself — a crash, the heap limit, the timeout — terminates it; the next load starts a
 * fresh one.
 */
export class PolicyWorker {
  #worker: Worker | null = null;
  readonly #timeoutMs: number;
  /** Armed after a load that left the worker whole; ends it. */
  readonly #idle: IdleTimer;

  constructor(timeoutMs = POLICY_LOAD_TIMEOUT_MS, idleMs = POLICY_WORKER_IDLE_MS) {
    this.#timeoutMs = timeoutMs;
    this.#idle = new IdleTimer(idleMs, () => this.close());
  }

  /** Whether a worker is running now. */
  get running(): boolean {
    return this.#worker !== null;
  }

  /**
   * Loads `path`, refusing a migrate hook not among `hooks` (the daemon's `actions.hooks`); never
   * rejects (every failure is an issue). One load at a time.
   */
  load(path: string, hooks: readonly string[] = []): Promise<WorkerLoad> {
    this.#idle.clear();
    const worker = this.#worker ?? startWorker({ kind: 'seawall-policy' });
    this.#worker = worker;
    worker.unref();
    return new Promise((resolve) => {
      const finish = (r: WorkerLoad, broken: boolean) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (broken) {
          if (this.#worker === worker) this.#worker = null;
          void worker.terminate();
        } else if (this.#worker === worker) this.#idle.arm();
        resolve(r);
      };
      const onMessage = (r: WorkerLoad) => finish(r, false);
      const onError = (err: unknown) =>
        finish({ ok: false, issues: [`${path}: the load failed: ${thrownText(err)}`] }, true);
      const onExit = (code: number) =>
        finish(
          { ok: false, issues: [`${path}: the loading worker exited (code ${code}) without a result`] },
          true,
        );
      const timer = setTimeout(
        () =>
          finish(
            { ok: false, issues: [`${path}: not loaded within ${this.#timeoutMs} ms; abandoned`] },
            true,
          ),
        this.#timeoutMs,
      );
      timer.unref();
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.postMessage({ path, hooks } satisfies LoadRequest);
    });
  }

  /** Stops the worker (at daemon stop). */
  close(): void {
    this.#idle.clear();
    void this.#worker?.terminate();
    this.#worker = null;
  }
}

/**
 * `seawall policy check|test|explain`: validate policy files, run their test files, and explain
 * one event's decision with the bytes the verdict would carry — against empty rate/repeat state,
 * or the state the event store held just before the event (`--store`).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { readConfigFile } from '../../daemon/index.js';
import { isSeawallError } from '../../errors/index.js';
import { INJECTION_ABIS, type InjectionAbi } from '../../kvm/index.js';
import {
  compilePolicy,
  formatPath,
  type HostCapabilities,
  loadPolicyFile,
  type PolicyEvent,
  type PolicyIssue,
  PolicyState,
  parsePolicyEvent,
  runPolicyTestFile,
  unconfiguredHooks,
} from '../../policies/index.js';
import { isStoreError, ReadOnlyStore } from '../../store/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { intValue, jsonValue, nonEmpty } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';

/** Each issue at its line and YAML path; one of the file as a whole (unreadable: line 0) as the file's. */
function printIssues(io: CliIo, file: string, issues: readonly PolicyIssue[]): void {
  for (const i of issues) {
    const at = i.line > 0 ? `${file}:${i.line}: ${i.path || '(document)'}` : file;
    io.err(terminalSafe(`${at}: ${i.message}`));
  }
}

async function check(files: string[], opts: { config?: string }, io: CliIo): Promise<number> {
  // A config that cannot be read ends the command (exit 1), as it would end the daemon's start.
  const hooks = opts.config === undefined ? null : Object.keys(readConfigFile(opts.config).actions.hooks);
  let status = 0;
  for (const file of files) {
    const r = await loadPolicyFile(file);
    if (!r.ok) {
      printIssues(io, file, r.issues);
      status = 1;
      continue;
    }
    const unknown = hooks === null ? [] : unconfiguredHooks(r.policy, hooks);
    if (unknown.length > 0) {
      const at = (u: (typeof unknown)[number]) => ({
        ...u,
        line: r.lineOf(u.path),
        path: formatPath(u.path),
      });
      printIssues(io, file, unknown.map(at));
      status = 1;
      continue;
    }
    const p = compilePolicy(r.policy);
    const extra = [p.dryRun ? 'dry-run' : '', p.indexKey ? `indexed by label ${p.indexKey}` : '']
      .filter(Boolean)
      .join(', ');
    io.out(
      terminalSafe(
        `${file}: ok: policy '${p.name}', ${p.rules.length} rule${p.rules.length === 1 ? '' : 's'} + default, version ${p.version}${extra ? ` (${extra})` : ''}`,
      ),
    );
  }
  return status;
}

async function test(files: string[], io: CliIo): Promise<number> {
  let status = 0;
  for (const file of files) {
    const r = await runPolicyTestFile(file);
    if (!r.ok) {
      printIssues(io, r.file, r.issues);
      status = 1;
      continue;
    }
    // Test names, `at`s, rule names and expected values are the files' own text: escaped, as in check.
    const out = (line: string) => io.out(terminalSafe(line));
    if (r.failures.length === 0) {
      out(
        `${file}: PASS: ${r.tests} test${r.tests === 1 ? '' : 's'}, ${r.events} event${r.events === 1 ? '' : 's'} against ${r.policyPath}`,
      );
      continue;
    }
    status = 1;
    out(`${file}: FAIL: ${r.failures.length} of ${r.events} events differ`);
    for (const f of r.failures) {
      out(`  ${file}:${f.line}: test '${f.test}', event ${f.step + 1} (at ${f.at}): got ${f.decision}`);
      const width = Math.max(...f.mismatches.map((m) => m.key.length));
      for (const m of f.mismatches) out(`    ${m.key.padEnd(width)}  expected ${m.expected}, got ${m.got}`);
    }
  }
  return status;
}

interface ExplainOptions {
  policy: string;
  event?: PolicyEvent;
  hostAbi: InjectionAbi;
  ras: boolean;
  emulate: boolean;
  store?: string;
  eventId?: number;
}

/** `--event`: JSON in the policy test format (docs/policies.md "Events"), validated here. */
function eventValue(text: string): PolicyEvent {
  const r = parsePolicyEvent(jsonValue(text));
  if (!r.ok) {
    throw new InvalidArgumentError(r.issues.map((i) => `${i.path || '(event)'}: ${i.message}`).join('; '));
  }
  return r.event;
}

/**
 * Reads `--store` with `query`, opened read-only. A file that is not a seawall event store (another
 * file, another SQLite database) is a failure naming the file, not SQLite's error with a stack.
 */
function readStore<T>(path: string, query: (r: ReadOnlyStore) => T): T {
  const notAStore = (err: unknown): unknown => {
    const empty = isStoreError(err, 'SEAWALL_STORE_OPEN') && err.detail.found === 0;
    if (isSeawallError(err) && !empty) return err;
    const why = empty ? 'it has no seawall schema' : (err as Error).message;
    return new CliError(
      'failed',
      `${path} is not a seawall event store (${why}); give --store the daemon's events.sqlite, e.g. /var/lib/seawall/events.sqlite`,
    );
  };
  let reader: ReadOnlyStore;
  try {
    reader = ReadOnlyStore.open(path);
  } catch (err) {
    throw notAStore(err);
  }
  try {
    return query(reader);
  } catch (err) {
    throw notAStore(err);
  } finally {
    reader.close();
  }
}

async function explain(opts: ExplainOptions, io: CliIo): Promise<number> {
  if (opts.eventId !== undefined && opts.store === undefined) {
    throw new CliError('usage', '--event-id names an event in the store: give --store too');
  }
  if (opts.event === undefined && opts.eventId === undefined) {
    throw new CliError(
      'usage',
      'give the event: --event JSON, or --store FILE --event-id ID for a stored one',
    );
  }
  const loaded = await loadPolicyFile(opts.policy);
  if (!loaded.ok) {
    printIssues(io, opts.policy, loaded.issues);
    return 1;
  }
  const state = new PolicyState();
  const policy = compilePolicy(loaded.policy, { state });
  let replayed: number | null = null;
  let event = opts.event;
  if (opts.store !== undefined) {
    const store = opts.store;
    // The event as stored when no --event is given; then the state the daemon had just before it:
    // every stored event before its time, over the window the daemon itself rebuilds at start.
    const read = readStore(store, (r) => {
      const e = event ?? r.policyEvent(opts.eventId as number);
      if (e === null) throw new CliError('failed', `${store} holds no event with id ${opts.eventId}`);
      return { e, before: r.policyEventsBefore(e.timeMs, policy.stateWindowMs, opts.eventId ?? null) };
    });
    event = read.e;
    for (const e of read.before) state.observe(e);
    replayed = read.before.length;
  }
  const host: HostCapabilities = { abi: opts.hostAbi, ras: opts.ras, emulateAbort: opts.emulate };
  const x = policy.explain(event as PolicyEvent, host);
  io.out(toJson(replayed === null ? x : { ...x, state: { store: opts.store, eventsReplayed: replayed } }));
  return 0;
}

export function registerPolicy(parent: Command, ctx: CliContext): void {
  const policy = parent
    .command('policy')
    .summary('check, test and explain policies')
    .description('Policy tooling: validate files, run their test files, explain one decision.');
  policy
    .command('check')
    .summary('validate policies; every error as file:line: path: message')
    .description(
      'Validates policy files. Exit 0 with one line per file; exit 1 with every error as file:line: path: message.',
    )
    .argument('<file...>', 'policy files')
    .option(
      '--config <file>',
      'the daemon’s configuration: also refuse migrate hooks its actions.hooks lacks, as the daemon does',
      nonEmpty,
    )
    .action(act<{ config?: string }, [string[]]>(ctx, (o, files) => check(files, o, ctx.io)));
  policy
    .command('test')
    .summary('run policy test files (*.test.yaml)')
    .description(
      'Runs policy test files: event sequences with expected decisions. Exit 1 lists every difference.',
    )
    .argument('<file...>', 'policy test files')
    .action(act<object, [string[]]>(ctx, (_o, files) => test(files, ctx.io)));
  policy
    .command('explain')
    .summary('the decision for one event, why, and the vcpu-events bytes')
    .description(
      'Which rule decides an event, why the earlier ones did not, and the kvm_vcpu_events bytes. ' +
        'Rate windows and repeated pages start empty, or, with --store, hold what the event store held before the event.',
    )
    .requiredOption('--policy <file>', 'the policy file', nonEmpty)
    .option(
      '--event <json>',
      'the event, as JSON (docs/policies.md "Events"); without it, the stored one --event-id names',
      eventValue,
    )
    .addOption(
      new Option('--host-abi <abi>', 'the host’s injection ABI').choices(INJECTION_ABIS).default('merged'),
    )
    .option('--no-ras', 'a host without FEAT_RAS')
    .option('--emulate', 'the VMM emulates aborts itself', false)
    .option('--store <file>', 'an event store (events.sqlite) to load rate and repeat state from', nonEmpty)
    .option(
      '--event-id <id>',
      'with --store: the event’s id in the store (`seawall events --json`): explained as stored when --event is not given; the events of its millisecond stored before it are replayed too',
      intValue(1),
    )
    .action(act<ExplainOptions>(ctx, (opts) => explain(opts, ctx.io)));
}

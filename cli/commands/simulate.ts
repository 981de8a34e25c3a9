/**
 * `seawall simulate`: drive a daemon with a simulated fleet through its real plugin socket. By
 * default every VM runs in a child process that ends on a KILL verdict, as a VMM would, so a
 * policy that kills can be tried: the daemon's kill enforcement reaches that child, not this
 * command. `--in-process` runs the fleet here (faster; a KILL verdict is then ignored).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type EventMix,
  type FallbackPolicy,
  type FleetProcessesSummary,
  isVmmError,
  MAX_FLEET_PROCESSES,
  parseMix,
  parseSeverityMix,
  type SeverityMix,
  type SimulationSummary,
  simulate,
  simulateInProcesses,
} from '../../vmm/index.js';
import { CliError, toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { findSocket, socketSearchHelp } from '../daemon-sockets.js';
import { durationValue, intValue, keyValue, nonEmpty } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';

/** The signals that stop a fleet of VM processes; simulate exits 128 + the signal's number. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

interface SimulateOptions {
  socket?: string;
  vms: number;
  vcpus: number;
  events?: number;
  duration?: number;
  rate?: number;
  mix?: EventMix;
  severity?: SeverityMix;
  pages?: number;
  label?: Record<string, string>;
  deadline: number;
  fallback: FallbackPolicy;
  allowFallback: boolean;
  vmPrefix?: string;
  inProcess: boolean;
  json: boolean;
}

/** Wraps a vmm/ parser so its error is a usage error naming the option. */
function parsed<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      if (isVmmError(err)) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

function report(s: SimulationSummary & { sigkilled?: string[] }, ctx: CliContext): void {
  const out = ctx.io.out;
  out(`fleet: ${s.vms} VMs × ${s.vcpus} vCPUs, ${s.durationMs} ms, ${s.eventsPerSecond} events/s`);
  out(
    `events sent ${s.sent}, answered by the daemon ${s.answered}, fallbacks ${s.fallbacks} (replayed ${s.replayed}, late verdicts ${s.lateVerdicts})`,
  );
  // What the exits got, the daemon's verdicts and the fallbacks alike (the wire's action names).
  out(
    `applied to the exits (daemon or fallback): ${Object.entries(s.verdicts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  if (s.killed.length > 0)
    out(`killed: ${s.killed.length} VM(s) ended by a KILL verdict: ${terminalSafe(s.killed.join(', '))}`);
  if (s.sigkilled && s.sigkilled.length > 0)
    out(`  of which SIGKILLed by the daemon (still running at the grace's end): ${s.sigkilled.join(', ')}`);
  const l = s.latencyUs;
  out(`latency µs: p50 ${l.p50}  p99 ${l.p99}  p99.9 ${l['p99.9']}`);
}

async function run(opts: SimulateOptions, ctx: CliContext): Promise<number> {
  if (opts.events === undefined && opts.duration === undefined) {
    throw new CliError('usage', 'give --events N or --duration 10s');
  }
  if (!opts.inProcess && opts.vms > MAX_FLEET_PROCESSES) {
    throw new CliError(
      'usage',
      `--vms: at most ${MAX_FLEET_PROCESSES} VMs as processes; add --in-process for more`,
    );
  }
  const socket = findSocket('plugin', opts.socket, ctx.env);
  const options = {
    socket,
    vms: opts.vms,
    vcpus: opts.vcpus,
    events: opts.events,
    durationMs: opts.duration,
    rate: opts.rate,
    mix: opts.mix,
    severity: opts.severity,
    pages: opts.pages,
    labels: opts.label,
    vmPrefix: opts.vmPrefix,
    deadlineMs: opts.deadline,
    fallback: opts.fallback,
  };
  let summary: (SimulationSummary & Partial<Pick<FleetProcessesSummary, 'sigkilled' | 'unreported'>>) | null =
    null;
  // SIGINT and SIGTERM end the VM processes first, which would otherwise outlive this command.
  const stopping = new AbortController();
  const stopped: { by: NodeJS.Signals | null } = { by: null };
  const onSignal = (signal: NodeJS.Signals) => {
    stopped.by = signal;
    stopping.abort();
  };
  if (!opts.inProcess) for (const s of STOP_SIGNALS) process.once(s, onSignal);
  try {
    summary = opts.inProcess
      ? await simulate(options)
      : await simulateInProcesses({ ...options, signal: stopping.signal });
  } catch (err) {
    if (stopped.by === null)
      throw new CliError('failed', `cannot drive the daemon at ${socket}: ${(err as Error).message}`);
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
  if (stopped.by !== null || summary === null) {
    ctx.io.err(`stopped by ${stopped.by}: every VM process was ended, nothing to report`);
    return stopped.by === 'SIGINT' ? 130 : 143;
  }
  if (opts.json) ctx.io.out(toJson(summary));
  else report(summary, ctx);
  // A VM process that ended without its report took its counts with it: the run says nothing of them.
  for (const u of summary.unreported ?? []) {
    const lost = u.events === null ? 'the events of its run' : `its ${u.events} planned event(s)`;
    ctx.io.err(
      `VM ${terminalSafe(u.vm)}: its process ended (${u.ended}) without a report: ${lost} not counted`,
    );
  }
  if (summary.unreported?.some((u) => u.ended === 'signal SIGKILL'))
    ctx.io.err('(a kill whose grace ended before the VM could report its KILL verdict looks the same)');
  if ((summary.unreported ?? []).length > 0) return 1;
  const unanswered = summary.sent - summary.answered;
  if (unanswered > 0 && !opts.allowFallback) {
    ctx.io.err(`${unanswered} event(s) were not answered by the daemon in time (fallback applied)`);
    return 1;
  }
  return 0;
}

export function registerSimulate(parent: Command, ctx: CliContext): void {
  parent
    .command('simulate')
    .summary('a simulated fleet against a running daemon: latency, verdicts, fallbacks')
    .description(
      'Drives a running daemon through its plugin socket with simulated VMs. Each VM runs in a child process ' +
        'that ends on a KILL verdict, as a VMM would, so kill policies can be tried. Exit 1 when an event was not answered in time, ' +
        'or when a VM process ended without a report other than after its KILL verdict. ' +
        'SIGINT or SIGTERM ends every VM process, then simulate, with exit 130 or 143.',
    )
    .option('--socket <path>', socketSearchHelp('plugin'), nonEmpty)
    .option('--vms <n>', 'VMs', intValue(1), 4)
    .option('--vcpus <n>', 'vCPUs per VM', intValue(1, 0xffff), 2)
    .option('--events <n>', 'events in all, across the fleet', intValue(1))
    .option('--duration <time>', 'run this long instead (e.g. 10s)', durationValue)
    .option('--rate <n>', 'events per second across the fleet (default: as fast as answered)', intValue(1))
    .option('--mix <weights>', 'event kinds by weight, e.g. sea=90,nisv=4,mmio=4,sigbus=2', parsed(parseMix))
    .option(
      '--severity <weights>',
      'SEA severities by weight, e.g. uer=80,ueo=10,uc=10',
      parsed(parseSeverityMix),
    )
    .option(
      '--pages <n>',
      'guest pages per VM its errors fall on (few pages: repeated pages)',
      intValue(1, 65536),
    )
    .option('--label <key=value>', 'a label of every VM (repeatable)', keyValue)
    .addOption(
      // Shown as a duration the option takes: the milliseconds themselves are not one.
      new Option('--deadline <time>', 'how long a vCPU waits for a verdict before the fallback')
        .argParser(durationValue)
        .default(1000, '1s'),
    )
    .addOption(
      new Option('--fallback <action>', 'what the plugin applies when no verdict comes in time')
        .choices(['inject', 'kill', 'resume'])
        .default('inject'),
    )
    .option('--allow-fallback', 'exit 0 even when some events were answered by the fallback', false)
    .option('--vm-prefix <prefix>', 'VM ids are <prefix>-<n> (default sim-<pid>)', nonEmpty)
    .option(
      '--in-process',
      'run every VM in this process (faster; a kill is then enforced on this command)',
      false,
    )
    .option('--json', 'machine-readable output', false)
    .action(act<SimulateOptions>(ctx, (opts) => run(opts, ctx)));
}

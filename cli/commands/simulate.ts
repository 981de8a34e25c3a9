/** `seawall simulate`: drive a daemon with a simulated fleet through its real plugin socket. */
import { parseArgs } from 'node:util';
import { resolveConfig } from '../../daemon/index.js';
import type { FallbackPolicy } from '../../vmm/index.js';
import { parseMix, simulate } from '../../vmm/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';
import { durationArg } from '../duration-arg.js';

export const SIMULATE_USAGE = [
  'seawall simulate [--socket PATH] [--vms N] [--vcpus M] (--events N | --duration 10s) [--rate N]',
  '                 [--mix sea=90,nisv=4,mmio=4,sigbus=2] [--label k=v]… [--deadline-ms MS]',
  '                 [--fallback inject|kill|resume] [--allow-fallback] [--json]',
  '                                                  a simulated fleet against a running daemon',
].join('\n');

function positive(name: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0)
    throw new CliError('usage', `--${name} must be a positive integer, got '${text}'`);
  return n;
}

export async function simulateCommand(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      vms: { type: 'string' },
      vcpus: { type: 'string' },
      events: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      mix: { type: 'string' },
      label: { type: 'string', multiple: true },
      'deadline-ms': { type: 'string' },
      fallback: { type: 'string' },
      'allow-fallback': { type: 'boolean', default: false },
      'vm-prefix': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.events === undefined && values.duration === undefined) {
    throw new CliError('usage', 'give --events N or --duration 10s');
  }
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const i = l.indexOf('=');
    if (i <= 0) throw new CliError('usage', `--label must be key=value, got '${l}'`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  const fallback = (values.fallback ?? 'inject') as FallbackPolicy;
  if (!['inject', 'kill', 'resume'].includes(fallback))
    throw new CliError('usage', '--fallback must be inject, kill or resume');
  let mix: ReturnType<typeof parseMix> | undefined;
  try {
    mix = values.mix ? parseMix(values.mix) : undefined;
  } catch (err) {
    throw new CliError('usage', (err as Error).message);
  }
  const socket = values.socket ?? resolveConfig(null, {}).socket;
  let summary: Awaited<ReturnType<typeof simulate>>;
  try {
    summary = await simulate({
      socket,
      vms: positive('vms', values.vms, 4),
      vcpus: positive('vcpus', values.vcpus, 2),
      events: values.events === undefined ? undefined : positive('events', values.events, 1),
      durationMs: values.duration === undefined ? undefined : durationArg(values.duration, '--duration'),
      rate: values.rate === undefined ? undefined : positive('rate', values.rate, 1),
      mix,
      labels,
      vmPrefix: values['vm-prefix'],
      deadlineMs: positive('deadline-ms', values['deadline-ms'], 1000),
      fallback,
    });
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('failed', `cannot drive the daemon at ${socket}: ${(err as Error).message}`);
  }
  if (values.json) {
    io.out(toJson(summary));
  } else {
    io.out(
      `fleet: ${summary.vms} VMs × ${summary.vcpus} vCPUs, ${summary.durationMs} ms, ${summary.eventsPerSecond} events/s`,
    );
    io.out(
      `events sent ${summary.sent}, answered by the daemon ${summary.answered}, fallbacks ${summary.fallbacks} (replayed ${summary.replayed}, late verdicts ${summary.lateVerdicts})`,
    );
    io.out(
      `verdicts: ${Object.entries(summary.verdicts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const l = summary.latencyUs;
    io.out(`latency µs: p50 ${l.p50}  p99 ${l.p99}  p99.9 ${l['p99.9']}`);
  }
  const unanswered = summary.sent - summary.answered;
  if (unanswered > 0 && !values['allow-fallback']) {
    io.err(`${unanswered} event(s) were not answered by the daemon in time (fallback applied)`);
    return 1;
  }
  return 0;
}

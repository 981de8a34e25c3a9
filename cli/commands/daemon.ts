/** `seawall daemon`: runs the service in the foreground until SIGTERM/SIGINT. */
import { parseArgs } from 'node:util';
import { readConfigFile, resolveConfig, Service } from '../../daemon/index.js';
import { CliError, type CliIo } from '../cli-error.js';

export const DAEMON_USAGE = [
  'seawall daemon [--config FILE] [--socket PATH] [--control-socket PATH] [--state-dir DIR]',
  '               [--policy FILE] [--metrics HOST:PORT | --no-metrics] [--no-store] [--log journal|stderr|auto]',
  '                                                  run the daemon (built-in defaults need no root)',
].join('\n');

export async function daemonCommand(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      socket: { type: 'string' },
      'control-socket': { type: 'string' },
      'state-dir': { type: 'string' },
      policy: { type: 'string' },
      metrics: { type: 'string' },
      'no-metrics': { type: 'boolean', default: false },
      'no-store': { type: 'boolean', default: false },
      log: { type: 'string' },
    },
  });
  const file = values.config ? readConfigFile(values.config) : null;
  const config = resolveConfig(file, {
    socket: values.socket,
    controlSocket: values['control-socket'],
    stateDir: values['state-dir'],
    policy: values.policy,
    metrics: values['no-metrics'] ? false : values.metrics,
    ...(values['no-store'] ? { store: false } : {}),
  });
  const service = new Service({
    config,
    logMode: (values.log as 'journal' | 'stderr' | 'auto' | undefined) ?? 'auto',
    announce: (line) => io.out(line),
  });
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
    // Close whatever levels did start (metrics endpoint, store, timers) so the process can exit.
    await service.stop().catch(() => {});
    if (err instanceof CliError) throw err;
    throw new CliError('failed', `cannot start: ${(err as Error).message}`);
  }
  started = true;
  io.out(`seawall daemon ready — ${service.statusLine()}`);
  const self = process.argv[1]?.endsWith('/seawall') ? 'seawall' : `node ${process.argv[1]}`;
  io.out(`feed it: ${self} simulate --socket ${config.socket} --vms 4 --vcpus 2 --events 1000`);
  if (stopRequested) service.stop().then(finished, finished);
  await done;
  return 0;
}

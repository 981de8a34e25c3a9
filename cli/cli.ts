#!/usr/bin/env node
/**
 * The `seawall` command: one binary, subcommands. This file only dispatches; each subcommand
 * lives in cli/commands/ and returns its exit status (0 ok, 1 refused/failed, 2 usage).
 */
import { isSeawallError } from '../errors/index.js';
import { CliError, type CliIo, processIo } from './cli-error.js';
import { DAEMON_USAGE, daemonCommand } from './commands/daemon.js';
import { ESR_USAGE, esrCommand } from './commands/esr.js';
import { EVENTS_USAGE, eventsCommand } from './commands/events.js';
import { KVM_USAGE, kvmCommand } from './commands/kvm.js';
import { POISON_USAGE, poisonCommand } from './commands/poison.js';
import { POLICY_USAGE, policyCommand } from './commands/policy.js';
import { RELOAD_USAGE, reloadCommand } from './commands/reload.js';
import { SIMULATE_USAGE, simulateCommand } from './commands/simulate.js';
import { STATUS_USAGE, statusCommand } from './commands/status.js';
import { VMS_USAGE, vmsCommand } from './commands/vms.js';

type Command = (argv: string[], io: CliIo) => number | Promise<number>;

const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['daemon', daemonCommand],
  ['esr', esrCommand],
  ['events', eventsCommand],
  ['kvm', kvmCommand],
  ['poison', poisonCommand],
  ['policy', policyCommand],
  ['reload', reloadCommand],
  ['simulate', simulateCommand],
  ['status', statusCommand],
  ['vms', vmsCommand],
]);

export const USAGE = [
  'usage: seawall <command> [options]',
  '',
  DAEMON_USAGE,
  STATUS_USAGE,
  VMS_USAGE,
  EVENTS_USAGE,
  POISON_USAGE,
  RELOAD_USAGE,
  POLICY_USAGE,
  SIMULATE_USAGE,
  ESR_USAGE,
  KVM_USAGE,
].join('\n');

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    io.out(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.get(name);
  if (!command) {
    io.err(`seawall: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.err(`seawall ${name}: ${err.message}`);
      return err.exitCode;
    }
    // Any other seawall error is a request understood and refused (a bad config, a policy that
    // does not load, a socket in use): said plainly, exit 1.
    if (isSeawallError(err)) {
      io.err(`seawall ${name}: ${err.message}`);
      return 1;
    }
    // parseArgs reports unknown or malformed options with these codes.
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`seawall ${name}: ${(err as Error).message}`);
      return 2;
    }
    throw err;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/seawall')) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (err: unknown) => {
      process.stderr.write(`seawall: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 70;
    },
  );
}

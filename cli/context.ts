/**
 * What every command gets: where to write, the environment (socket search), the clock (`--since`)
 * and where to put its exit status. Tests pass their own; cli.ts passes the process's.
 */
import type { Command } from 'commander';
import type { CliIo } from './cli-error.js';

export interface CliContext {
  io: CliIo;
  env: NodeJS.ProcessEnv;
  now: () => number;
  /** Records the exit status of the command that ran: 0 ok, 1 failed or refused. */
  exit(status: number): void;
}

/**
 * A commander action from a handler that returns its exit status. The handler receives the
 * command's options (typed by the caller) and its positional arguments.
 */
export function act<O, A extends unknown[] = []>(
  ctx: CliContext,
  handler: (opts: O, ...args: A) => number | Promise<number>,
): (...raw: unknown[]) => Promise<void> {
  return async (...raw: unknown[]) => {
    // commander calls an action with (…arguments, options, command).
    const command = raw[raw.length - 1] as Command;
    const args = raw.slice(0, -2) as A;
    ctx.exit(await handler(command.opts<O & object>() as O, ...args));
  };
}

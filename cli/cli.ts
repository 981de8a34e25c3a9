#!/usr/bin/env node
/**
 * The `seawall` command: builds the command tree (cli/program.ts), runs it, and turns the outcome
 * into the exit status — 0 ok, 1 failed or refused, 2 usage — with the reason on stderr.
 */
import { CommanderError } from 'commander';
import { isSeawallError } from '../errors/index.js';
import { handleBrokenPipes } from './broken-pipe.js';
import { CliError, type CliIo, processIo } from './cli-error.js';
import type { CliContext } from './context.js';
import { buildProgram } from './program.js';
import { terminalSafeLines } from './terminal-text.js';

export interface MainOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
}

export async function main(argv: string[], io: CliIo = processIo, o: MainOptions = {}): Promise<number> {
  let status = 0;
  const ctx: CliContext = {
    io,
    env: o.env ?? process.env,
    now: o.now ?? Date.now,
    exit: (n) => {
      status = n;
    },
  };
  const program = buildProgram(ctx);
  let name = 'seawall';
  program.hook('preAction', (_root, action) => {
    const parts: string[] = [];
    for (let c: typeof action | null = action; c && c !== program; c = c.parent) parts.unshift(c.name());
    name = ['seawall', ...parts].join(' ');
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return status;
  } catch (err) {
    // --help and --version end with exit code 0; every other parser error is a usage error, and
    // commander has already printed it.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError) {
      if (!err.reported) io.err(`${name}: ${terminalSafeLines(err.message)}`);
      return err.exitCode;
    }
    // Any other seawall error is a request understood and refused (a bad config, a policy that
    // does not load, a socket in use): said plainly, exit 1.
    if (isSeawallError(err)) {
      io.err(`${name}: ${terminalSafeLines(err.message)}`);
      return 1;
    }
    throw err;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/seawall')) {
  handleBrokenPipes();
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (err: unknown) => {
      process.stderr.write(`seawall: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

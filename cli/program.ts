/**
 * The `seawall` command tree: every subcommand, option and argument is defined once, here and in
 * cli/commands/, and everything else is derived from that definition — the parser, `--help` at
 * every level, the man page (cli/man-page.ts, docs/seawall.1) and shell completion
 * (cli/completion.ts).
 *
 * Exit status, everywhere: 0 done; 1 the request was understood but failed or was refused (no
 * daemon, an invalid policy file, a reload refused); 2 the command line is wrong (an unknown
 * command or option, a missing or malformed value).
 */
import { Command } from 'commander';
import { VERSION } from '../daemon/index.js';
import { registerAlertRules } from './commands/alert-rules.js';
import { registerCompletion } from './commands/completion.js';
import { registerDaemon } from './commands/daemon.js';
import { registerEsr } from './commands/esr.js';
import { registerEvents } from './commands/events.js';
import { registerKvm } from './commands/kvm.js';
import { registerPoison } from './commands/poison.js';
import { registerPolicy } from './commands/policy.js';
import { registerReload } from './commands/reload.js';
import { registerSimulate } from './commands/simulate.js';
import { registerStatus } from './commands/status.js';
import { registerVms } from './commands/vms.js';
import { registerWhy } from './commands/why.js';
import type { CliContext } from './context.js';

export const EXIT_STATUS_TEXT = [
  'Exit status:',
  '  0  done, or the reader of its output went away first (`seawall events | head`)',
  '  1  failed or refused: no daemon found, an invalid policy, a reload refused, an event unanswered',
  '  2  usage: an unknown command or option, a missing or malformed value',
].join('\n');

/** The whole command tree, writing to `ctx.io`; `parseAsync` throws CommanderError on usage errors. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('seawall')
    .description(
      'seawall handles memory errors (KVM_EXIT_ARM_SEA, NISV, MMIO, SIGBUS) of arm64 KVM guests: a daemon that ' +
        'answers each error with a verdict from the operator’s policy, and the commands that steer and question it.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for this command')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
    })
    .addHelpText('afterAll', `\n${EXIT_STATUS_TEXT}\n`);
  registerDaemon(program, ctx);
  registerStatus(program, ctx);
  registerVms(program, ctx);
  registerEvents(program, ctx);
  registerPoison(program, ctx);
  registerWhy(program, ctx);
  registerReload(program, ctx);
  registerPolicy(program, ctx);
  registerSimulate(program, ctx);
  registerEsr(program, ctx);
  registerKvm(program, ctx);
  registerAlertRules(program, ctx);
  registerCompletion(program, ctx);
  // Usage errors name the command they are about, as every other error does.
  for (const { path, command } of walkCommands(program)) {
    const name = ['seawall', ...path].join(' ');
    command.configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
      outputError: (s, write) => write(`${name}: ${s.replace(/^error: /, '')}`),
    });
  }
  return program;
}

/** Every command of the tree, depth first, with its full name (`policy explain`). */
export function walkCommands(root: Command): { path: string[]; command: Command }[] {
  const out: { path: string[]; command: Command }[] = [];
  const visit = (c: Command, path: string[]) => {
    out.push({ path, command: c });
    for (const sub of c.commands) visit(sub, [...path, sub.name()]);
  };
  visit(root, []);
  return out;
}

/** `seawall completion bash`: the shell completion script, generated from the command tree. */
import { Argument, type Command } from 'commander';
import { bashCompletion } from '../completion.js';
import { act, type CliContext } from '../context.js';

export function registerCompletion(parent: Command, ctx: CliContext): void {
  parent
    .command('completion')
    .summary('shell completion script (bash)')
    .description(
      'Prints the bash completion script. Load it with: source <(seawall completion bash); install.sh installs it ' +
        'as /usr/share/bash-completion/completions/seawall.',
    )
    .addArgument(new Argument('[shell]', 'the shell').choices(['bash']).default('bash'))
    .action(
      act<object, [string]>(ctx, () => {
        let root: Command = parent;
        while (root.parent) root = root.parent;
        ctx.io.out(bashCompletion(root, root.name()));
        return 0;
      }),
    );
}

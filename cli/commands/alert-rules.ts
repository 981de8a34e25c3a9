/** `seawall alert-rules`: the shipped Prometheus alert rules, with absolute runbook URLs. */
import { type Command, InvalidArgumentError } from 'commander';
import { alertRulesText, DEFAULT_RUNBOOK_BASE } from '../../metrics/index.js';
import { act, type CliContext } from '../context.js';

function baseValue(text: string): string {
  try {
    const url = new URL(text);
    if (url.hash !== '') throw new InvalidArgumentError('must not have a #fragment');
    return text;
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError('not an absolute URL, e.g. https://wiki.example/seawall/operations.md');
  }
}

export function registerAlertRules(parent: Command, ctx: CliContext): void {
  parent
    .command('alert-rules')
    .summary('the Prometheus alert rules, with runbook links for your site')
    .description(
      'Prints the shipped Prometheus alert rules. Each alert’s runbook_url is <base>#<alert name in lower case>; ' +
        `the default base is the documentation installed on the host (${DEFAULT_RUNBOOK_BASE}).`,
    )
    .option('--runbook-base <url>', 'absolute URL of operations.md as your readers reach it', baseValue)
    .action(
      act<{ runbookBase?: string }>(ctx, (opts) => {
        ctx.io.out(alertRulesText(opts.runbookBase));
        return 0;
      }),
    );
}

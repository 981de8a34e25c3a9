/** `seawall alert-rules`: the shipped Prometheus alert rules, with absolute runbook URLs. */
import { type Command, InvalidArgumentError } from 'commander';
import {
  alertRulesText,
  DEFAULT_RUNBOOK_BASE,
  isMetricsError,
  runbookBaseHref,
} from '../../metrics/index.js';
import { act, type CliContext } from '../context.js';

function baseValue(text: string): string {
  try {
    return runbookBaseHref(text);
  } catch (err) {
    if (isMetricsError(err)) throw new InvalidArgumentError(err.message);
    throw err;
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

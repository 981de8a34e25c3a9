/**
 * `seawall reload`: asks the daemon to load its policy file again. Exit 0 when the new policy is
 * live; exit 1 with its errors (the daemon's first MAX_REPORTED_ISSUES, and how many more) when it was
 * refused (the previous policy keeps serving). It waits
 * as long as the daemon may spend loading (control/client.ts RELOAD_TIMEOUT_MS); without an
 * answer by then it exits 1 saying the outcome is unknown, never that the reload was refused.
 */
import type { Command } from 'commander';
import { RELOAD_TIMEOUT_MS } from '../../control/index.js';
import { MAX_REPORTED_ISSUES } from '../../daemon/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { terminalSafe } from '../terminal-text.js';
import { askDaemon, type ControlOptions, controlOptions } from './control-io.js';

export function registerReload(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('reload')
      .summary('reload the policy: 0 = new policy live, 1 = refused, old kept')
      .description(
        'Reloads the policy file. Exit 0: the new policy is live. ' +
          `Exit 1: it was refused, its errors are printed (the first ${MAX_REPORTED_ISSUES}, and how many more: seawall policy check lists every one), and the previous policy keeps deciding; ` +
          `or no answer came within ${RELOAD_TIMEOUT_MS / 1000} s (a load may take the daemon 300 s), and whether it took effect is unknown: seawall status shows the policy in force.`,
      ),
  ).action(
    act<ControlOptions>(ctx, async (opts) => {
      const r = await askDaemon(ctx, opts, 'reload');
      if (opts.json) ctx.io.out(toJson(r));
      if (r.ok) {
        if (!opts.json) ctx.io.out(`policy ${terminalSafe(r.version)} is live`);
        return 0;
      }
      ctx.io.err(
        `policy reload refused; ${terminalSafe(r.version)} is still in force:\n${r.issues.map((i) => `  ${terminalSafe(i)}`).join('\n')}`,
      );
      return 1;
    }),
  );
}

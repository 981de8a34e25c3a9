/**
 * `seawall reload`: asks the daemon to load its policy file again. Exit 0 when the new policy is
 * live; exit 1 with every error when it was refused (the previous policy keeps serving).
 */
import { type CliIo, toJson } from '../cli-error.js';
import { askDaemon, CONTROL_SOCKET_OPTION, parseControlArgs } from './control-io.js';

export const RELOAD_USAGE = [
  `seawall reload ${CONTROL_SOCKET_OPTION} [--json]`,
  '                                                  reload the policy: 0 = new policy live, 1 = refused, old kept',
].join('\n');

export async function reloadCommand(argv: string[], io: CliIo): Promise<number> {
  const { socket, json } = parseControlArgs(argv, {}, RELOAD_USAGE);
  const r = await askDaemon(socket, 'reload');
  if (json) io.out(toJson(r));
  if (r.ok) {
    if (!json) io.out(`policy ${r.version} is live`);
    return 0;
  }
  io.err(
    `policy reload refused; ${r.version} is still in force:\n${r.issues.map((i) => `  ${i}`).join('\n')}`,
  );
  return 1;
}

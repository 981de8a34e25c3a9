/** `seawall poison`: guest pages that hit memory errors, per VM (kept regardless of retention). */

import type { PoisonedPage } from '../../store/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';
import { askDaemon, CONTROL_SOCKET_OPTION, formatTime, parseControlArgs, table } from './control-io.js';

export const POISON_USAGE = [
  `seawall poison [--vm ID] ${CONTROL_SOCKET_OPTION} [--json]`,
  '                                                  poisoned guest pages: VM, GPA, count, first and last seen',
].join('\n');

export function formatPoison(pages: readonly PoisonedPage[]): string {
  if (pages.length === 0) return 'no poisoned pages';
  return table(
    ['VM', 'GPA', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
    pages.map((p) => [p.vm, p.gpa, String(p.count), formatTime(p.firstSeenMs), formatTime(p.lastSeenMs)]),
  );
}

export async function poisonCommand(argv: string[], io: CliIo): Promise<number> {
  const { socket, json, values } = parseControlArgs(argv, { vm: { type: 'string' } }, POISON_USAGE);
  const args: Record<string, unknown> = {};
  if (typeof values.vm === 'string') {
    if (values.vm === '') throw new CliError('usage', '--vm needs a VM id');
    args.vm = values.vm;
  }
  const pages = await askDaemon(socket, 'poison', args);
  io.out(json ? toJson(pages) : formatPoison(pages));
  return 0;
}

/**
 * What the control-socket commands (status, vms, events, poison, reload) share: their option
 * parsing (every one takes --control-socket and --json), the request to the daemon with its
 * failures turned into CLI errors, and the formatting of times and sizes for people.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import {
  type ControlCommand,
  type ControlResults,
  controlRequest,
  isControlError,
} from '../../control/index.js';
import { defaultControlSocket } from '../../daemon/index.js';
import { CliError } from '../cli-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export const CONTROL_SOCKET_OPTION = '[--control-socket PATH]';

export interface ControlArgs<V> {
  socket: string;
  json: boolean;
  values: V;
}

/** Parses `argv` with the shared options plus `extra`; a bad command line is a usage error (exit 2). */
export function parseControlArgs<O extends Options>(
  argv: string[],
  extra: O,
  usage: string,
): ControlArgs<Record<keyof O, string | boolean | undefined>> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...extra,
        'control-socket': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
      throw new CliError('usage', `${(err as Error).message}\nusage: ${usage}`);
    throw err;
  }
  const socket = values['control-socket'];
  if (socket === '') throw new CliError('usage', '--control-socket needs a path');
  return {
    socket: typeof socket === 'string' ? socket : defaultControlSocket(),
    json: values.json === true,
    values: values as Record<keyof O, string | boolean | undefined>,
  };
}

/** Asks the daemon; a daemon that is not running or refuses is a failure (exit 1) with its reason. */
export async function askDaemon<C extends ControlCommand>(
  socket: string,
  cmd: C,
  args: Record<string, unknown> = {},
): Promise<ControlResults[C]> {
  try {
    return await controlRequest(socket, cmd, args);
  } catch (err) {
    if (isControlError(err)) throw new CliError('failed', `${err.message} [${err.code}]`);
    throw err;
  }
}

/** `2024-05-01 12:00:03Z` (UTC, to the second), or `-` for none. */
export function formatTime(ms: number | null): string {
  if (ms === null || ms === 0) return '-';
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** `3d 4h`, `5m 2s`, `900ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let rest = ms;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || parts.length > 0) parts.push(`${n}${name}`);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** `512 B`, `3.2 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Left-aligned columns separated by two spaces, header first. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * What the control-socket commands (status, vms, events, poison, why, reload) share: the
 * `--control-socket` and `--json` options, finding the daemon (cli/daemon-sockets.ts), the request
 * with its failures turned into CLI errors, the paging of long listings, and the formatting of
 * times, sizes and tables — every cell made safe for a terminal, since VM ids and labels come from
 * plugins.
 */
import type { Command } from 'commander';
import {
  type ControlCommand,
  type ControlResults,
  controlRequest,
  isControlError,
} from '../../control/index.js';
import { MAX_QUERY_LIMIT } from '../../store/index.js';
import { CliError } from '../cli-error.js';
import type { CliContext } from '../context.js';
import { findSocket, socketSearchHelp } from '../daemon-sockets.js';
import { intValue, nonEmpty } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';

export interface ControlOptions {
  controlSocket?: string;
  json: boolean;
}

/** Adds the options every control command takes. */
export function controlOptions(cmd: Command): Command {
  return cmd
    .option('--control-socket <path>', socketSearchHelp('control'), nonEmpty)
    .option('--json', 'machine-readable output (times in ms since the epoch, addresses as hex)', false);
}

/** Asks the daemon; one that is not running or refuses is a failure (exit 1) with its reason. */
export async function askDaemon<C extends ControlCommand>(
  ctx: CliContext,
  opts: ControlOptions,
  cmd: C,
  args: Record<string, unknown> = {},
): Promise<ControlResults[C]> {
  const socket = findSocket('control', opts.controlSocket, ctx.env);
  try {
    return await controlRequest(socket, cmd, args);
  } catch (err) {
    if (isControlError(err)) throw new CliError('failed', `${err.message} [${err.code}]`);
    throw err;
  }
}

/** The options of a listing the daemon pages (`--limit`, `--all`). */
export interface PagedOptions extends ControlOptions {
  limit: number;
  all: boolean;
}

/** The control options, `--limit` (default 1000) and `--all`, for a listing of `what` (`pagedRows`). */
export function pagedOptions(cmd: Command, what: string): Command {
  return controlOptions(cmd)
    .option('--limit <n>', `at most N ${what}, 1 to ${MAX_QUERY_LIMIT}`, intValue(1, MAX_QUERY_LIMIT), 1000)
    .option('--all', `every one of the ${what}, however many (fetched in pages)`, false);
}

/**
 * The first `limit` rows of a listing the daemon pages by key (`fetch` asks for at most `limit`
 * rows after `last`), or with `all` every row, fetched MAX_QUERY_LIMIT at a time: each request
 * stays bounded however long the listing. `more` says rows were left out.
 */
export async function pagedRows<T>(
  fetch: (limit: number, last: T | undefined) => Promise<T[]>,
  limit: number,
  all: boolean,
): Promise<{ rows: T[]; more: boolean }> {
  const size = all ? MAX_QUERY_LIMIT : limit;
  const rows: T[] = [];
  for (;;) {
    const batch = await fetch(size, rows[rows.length - 1]);
    for (const row of batch) rows.push(row);
    if (batch.length < size) return { rows, more: false };
    if (!all) return { rows, more: (await fetch(1, rows[rows.length - 1])).length > 0 };
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
/** `n` and its noun, singular for 1: `1 VM`, `3 VMs`, `1 poisoned page`. */
export function counted(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

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

/** Left-aligned columns separated by two spaces, header first; every cell made terminal-safe. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  return new GrowingTable(headers).lines(rows, true);
}

/**
 * A table printed some rows at a time (`seawall events --follow`): each call's lines are aligned
 * with the earlier ones, a column widening when a cell needs it and never narrowing.
 */
export class GrowingTable {
  readonly #headers: readonly string[];
  readonly #widths: number[];

  constructor(headers: readonly string[]) {
    this.#headers = headers;
    this.#widths = headers.map((h) => h.length);
  }

  /** The rows' lines (after the header's with `header`), every cell made terminal-safe. */
  lines(rows: readonly (readonly string[])[], header = false): string {
    const safe = rows.map((r) => r.map(terminalSafe));
    for (const r of safe)
      for (const [i, c] of r.entries()) this.#widths[i] = Math.max(this.#widths[i] ?? 0, c.length);
    const line = (cells: readonly string[]) =>
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(this.#widths[i] ?? 0)))
        .join('  ')
        .trimEnd();
    return [...(header ? [line(this.#headers)] : []), ...safe.map(line)].join('\n');
  }
}

/**
 * Errors a CLI command raises for the operator: `usage` exits 2 (the command line is wrong),
 * `failed` exits 1 (the request was understood and refused or did not hold).
 */
import { SeawallError } from '../errors/index.js';

export class CliError extends SeawallError<'SEAWALL_CLI_USAGE' | 'SEAWALL_CLI_FAILED'> {
  override readonly name = 'CliError';
  readonly exitCode: number;
  /** Already said on stderr (a daemon's log there): the command only exits with its code. */
  readonly reported: boolean;
  constructor(kind: 'usage' | 'failed', message: string, opts: { reported?: boolean } = {}) {
    super(kind === 'usage' ? 'SEAWALL_CLI_USAGE' : 'SEAWALL_CLI_FAILED', message);
    this.exitCode = kind === 'usage' ? 2 : 1;
    this.reported = opts.reported ?? false;
  }
}

/** Output streams a command writes to; tests pass their own. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

const hexBigints = (_k: string, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

/** JSON with bigints as 0x-hex strings: ESRs and addresses are read in hex. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, hexBigints, 2);
}

/** `toJson` on one line (a stream of values, one per line). */
export function toJsonLine(value: unknown): string {
  return JSON.stringify(value, hexBigints);
}

/** `seawall esr decode <ESR...> [--json]`: ESR_ELx values, field by field. */
import type { Command } from 'commander';
import { decodeEsr, type Esr, type FscClass } from '../../kvm/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { registerValues } from '../option-values.js';

const EC_TEXT: Readonly<Record<string, string>> = {
  'dabt-lower-el': 'data abort from a lower exception level (the guest)',
  'dabt-current-el': 'data abort taken without a change in exception level',
  'iabt-lower-el': 'instruction abort from a lower exception level (the guest)',
  'iabt-current-el': 'instruction abort taken without a change in exception level',
  serror: 'SError interrupt',
};

export function describeFsc(fsc: number, cls: FscClass): string {
  switch (cls.kind) {
    case 'sea':
      return 'synchronous external abort, not on a translation table walk';
    case 'sea-walk':
      return `synchronous external abort on a translation table walk, level ${cls.level}`;
    case 'parity':
      return 'synchronous parity or ECC error, not on a translation table walk';
    case 'parity-walk':
      return `synchronous parity or ECC error on a translation table walk, level ${cls.level}`;
    case 'other':
      return `fault status 0x${fsc.toString(16)} (not an external abort)`;
  }
}

const SEVERITY_TEXT = {
  uer: 'UER, recoverable (the error has not been silently propagated)',
  uc: 'UC, uncontainable',
  ueo: 'UEO, restartable',
  reserved: 'reserved encoding',
} as const;

const hex = (v: number | bigint, width: number) => `0x${v.toString(16).padStart(width, '0')}`;
const flag = (b: boolean) => (b ? '1' : '0');

export function formatEsr(esr: Esr): string {
  const lines = [
    `ESR ${hex(esr.raw, 16)}`,
    `  EC     ${hex(esr.ec, 2)}  ${EC_TEXT[esr.ecName] ?? esr.ecName}`,
    `  IL     ${flag(esr.il)}     ${esr.il ? '32-bit instruction trapped' : '16-bit instruction trapped (or not applicable)'}`,
    `  ISS    ${hex(esr.iss, 7)}`,
  ];
  const a = esr.abort;
  if (a) {
    lines.push(
      `    ISV    ${flag(a.isv)}     ${a.isv ? 'instruction syndrome valid' : 'no instruction syndrome'}`,
    );
    if (a.access) {
      lines.push(
        `    SAS    ${a.access.sas}     access size ${1 << a.access.sas} byte(s)`,
        `    SSE    ${flag(a.access.sse)}`,
        `    SRT    ${a.access.srt}`,
        `    SF     ${flag(a.access.sf)}`,
        `    AR     ${flag(a.access.ar)}`,
      );
    }
    // VNCR [13] and CM [8] are a data abort's; RES0 in an instruction abort's ISS.
    const res0 = (set: boolean) =>
      set ? 'RES0 in an instruction abort: should be 0' : 'RES0 in an instruction abort';
    lines.push(`    VNCR   ${flag(a.vncr)}     ${a.kind === 'instruction' ? res0(a.vncr) : ''}`.trimEnd());
    lines.push(
      a.severity
        ? `    SET    0b${a.set.toString(2).padStart(2, '0')}  ${SEVERITY_TEXT[a.severity]}`
        : `    SET    0b${a.set.toString(2).padStart(2, '0')}  (meaningful only with FSC 0x10)`,
    );
    lines.push(
      `    FnV    ${flag(a.fnv)}     ${a.fnv ? 'FAR is not valid' : 'FAR holds the faulting virtual address'}`,
      `    EA     ${flag(a.ea)}`,
      `    CM     ${flag(a.cm)}     ${a.kind === 'instruction' ? res0(a.cm) : a.cm ? 'cache maintenance' : ''}`.trimEnd(),
      `    S1PTW  ${flag(a.s1ptw)}     ${a.s1ptw ? 'on a stage 2 fault during a stage 1 table walk' : ''}`.trimEnd(),
    );
    if (a.kind === 'data') lines.push(`    WnR    ${flag(a.wnr)}     ${a.wnr ? 'write' : 'read'}`);
    lines.push(`    FSC    ${hex(a.fsc, 2)}  ${describeFsc(a.fsc, a.fscClass)}`);
  } else {
    lines.push('    (ISS fields decoded only for data and instruction aborts)');
  }
  lines.push(`  ISS2   ${hex(esr.iss2, 6)}`);
  return lines.join('\n');
}

export function registerEsr(parent: Command, ctx: CliContext): void {
  parent
    .command('esr')
    .summary('decode ESR_ELx values')
    .description('Exception syndrome registers, decoded.')
    .command('decode')
    .summary('ESRs, field by field')
    .description(
      'Decodes ESR_ELx values field by field: EC, IL, ISS and, for aborts, every ISS field. ' +
        "Several values are decoded in the order given (a log's worth through xargs); " +
        'with --json, one value is one object and several are an array of them.',
    )
    .argument('<esr...>', 'the ESR: hex 0x…, binary 0b… or decimal, at most 64 bits', registerValues)
    .option('--json', 'machine-readable output', false)
    .action(
      act<{ json: boolean }, [bigint[]]>(ctx, (opts, raws) => {
        const decoded = raws.map(decodeEsr);
        if (opts.json) ctx.io.out(toJson(decoded.length === 1 ? decoded[0] : decoded));
        else ctx.io.out(decoded.map(formatEsr).join('\n\n'));
        return 0;
      }),
    );
}

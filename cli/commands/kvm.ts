/**
 * `seawall kvm probe` and `seawall kvm events`: the host's KVM capabilities, and the exact
 * kvm_vcpu_events image an injection would use.
 */
import { parseArgs } from 'node:util';
import {
  encodeInjection,
  INJECTION_ABIS,
  type InjectionAbi,
  type InjectionRequest,
  isKvmError,
  parseEsr,
  probeHost,
  validateRawIss,
} from '../../kvm/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';

export const KVM_USAGE = [
  'seawall kvm probe [--json] [--device PATH] [--ext-abt-esr-cap N]   what /dev/kvm offers, or why nothing',
  'seawall kvm events --abi merged|ext-abt-esr --kind data|instruction [--iss 0x…] [--no-ras]',
  '                                                  the 64-byte kvm_vcpu_events image, as 128 hex digits',
].join('\n');

function probe(argv: string[], io: CliIo): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      device: { type: 'string' },
      'ext-abt-esr-cap': { type: 'string' },
    },
  });
  const capText = values['ext-abt-esr-cap'];
  const cap = capText === undefined ? undefined : Number(capText);
  if (cap !== undefined && (!Number.isInteger(cap) || cap <= 0)) {
    throw new CliError('usage', `--ext-abt-esr-cap must be a positive capability number, got '${capText}'`);
  }
  const result = probeHost({ device: values.device, extAbtEsrCap: cap });
  if (values.json) {
    io.out(toJson(result));
  } else if (!result.available) {
    io.out(`KVM: not available — ${result.message}`);
    io.out('seawall still runs here: it decides for VMMs elsewhere, and the simulator needs no KVM.');
  } else {
    const yn = (b: boolean | null) =>
      b === null ? 'not probed (no capability number configured)' : b ? 'yes' : 'no';
    io.out(
      `KVM: ${result.device}, API ${result.apiVersion}, ${result.arch}, vCPU mmap size ${result.vcpuMmapSize}`,
    );
    io.out(`  KVM_CAP_ARM_SEA_TO_USER      ${yn(result.caps.seaToUser)}`);
    io.out(`  KVM_CAP_ARM_INJECT_EXT_DABT  ${yn(result.caps.injectExtDabt)}`);
    io.out(`  KVM_CAP_ARM_NISV_TO_USER     ${yn(result.caps.nisvToUser)}`);
    io.out(`  IABT / chosen-ESR injection  ${yn(result.caps.extAbtEsr)}`);
    if (result.arch !== 'arm64') {
      io.out(`  (a ${result.arch} host: the arm64 SEA capabilities are absent by construction)`);
    }
  }
  return 0;
}

function events(argv: string[], io: CliIo): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      abi: { type: 'string' },
      kind: { type: 'string' },
      iss: { type: 'string' },
      'no-ras': { type: 'boolean', default: false },
    },
  });
  const abi = values.abi as InjectionAbi | undefined;
  if (!abi || !INJECTION_ABIS.includes(abi))
    throw new CliError('usage', `--abi must be one of ${INJECTION_ABIS.join(', ')}`);
  if (values.kind !== 'data' && values.kind !== 'instruction') {
    throw new CliError('usage', '--kind must be data or instruction');
  }
  const req: InjectionRequest = { kind: values.kind };
  try {
    if (values.iss !== undefined) req.iss = validateRawIss(parseEsr(values.iss));
    const image = encodeInjection(req, { abi, ras: !values['no-ras'] });
    io.out(image.toString('hex'));
  } catch (err) {
    if (isKvmError(err)) throw new CliError('failed', `${abi} ABI: ${err.message}`);
    throw err;
  }
  return 0;
}

export function kvmCommand(argv: string[], io: CliIo): number {
  const [sub, ...rest] = argv;
  if (sub === 'probe') return probe(rest, io);
  if (sub === 'events') return events(rest, io);
  throw new CliError('usage', `usage:\n${KVM_USAGE}`);
}

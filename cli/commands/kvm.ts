/**
 * `seawall kvm probe` and `seawall kvm events`: the host's KVM capabilities, and the exact
 * kvm_vcpu_events image an injection would use.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  encodeInjection,
  INJECTION_ABIS,
  type InjectionAbi,
  type InjectionRequest,
  ISS_MASK,
  isKvmError,
  probeHost,
} from '../../kvm/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { intValue, nonEmpty, registerValue } from '../option-values.js';

interface ProbeOptions {
  json: boolean;
  device?: string;
  extAbtEsrCap?: number;
}

function probe(values: ProbeOptions, io: CliIo): number {
  const result = probeHost({ device: values.device, extAbtEsrCap: values.extAbtEsrCap });
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
      io.out(`  (this host is ${result.arch}: the arm64 SEA capabilities are absent by construction)`);
    }
  }
  return 0;
}

interface EventsOptions {
  abi: InjectionAbi;
  kind: 'data' | 'instruction';
  iss?: bigint;
  ras: boolean;
}

function events(values: EventsOptions, io: CliIo): number {
  const req: InjectionRequest = { kind: values.kind };
  if (values.iss !== undefined) req.iss = Number(values.iss);
  try {
    io.out(encodeInjection(req, { abi: values.abi, ras: values.ras }).toString('hex'));
  } catch (err) {
    // The request was understood; this host's ABI cannot express it.
    if (isKvmError(err)) throw new CliError('failed', `${values.abi} ABI: ${err.message}`);
    throw err;
  }
  return 0;
}

/** ISS [24:0], checked here so a value that cannot be an ISS is a usage error. */
function issValue(text: string): bigint {
  const v = registerValue(text);
  if (v > BigInt(ISS_MASK))
    throw new InvalidArgumentError('ISS must fit in ESR bits [24:0] (at most 0x1ffffff)');
  return v;
}

export function registerKvm(parent: Command, ctx: CliContext): void {
  const kvm = parent
    .command('kvm')
    .summary('this host’s KVM, and injection images')
    .description('The host’s KVM capabilities, and the exact kvm_vcpu_events image an injection uses.');
  kvm
    .command('probe')
    .summary('what /dev/kvm offers, or why nothing')
    .description(
      'Opens /dev/kvm and reports the API version and the capabilities seawall uses (SEA_TO_USER, INJECT_EXT_DABT, NISV_TO_USER, the posted chosen-ESR ABI).',
    )
    .option('--json', 'machine-readable output', false)
    .option('--device <path>', 'the KVM device (default /dev/kvm)', nonEmpty)
    .option(
      '--ext-abt-esr-cap <n>',
      'capability number of the posted chosen-ESR ABI, to probe it',
      intValue(1),
    )
    .action(act<ProbeOptions>(ctx, (opts) => probe(opts, ctx.io)));
  kvm
    .command('events')
    .summary('the 64-byte kvm_vcpu_events image of an injection, as hex')
    .description(
      'Prints the 64-byte kvm_vcpu_events image that injects an external abort on a host of the given ABI, as 128 hex digits.',
    )
    .addOption(
      new Option('--abi <abi>', 'the host’s kvm_vcpu_events ABI')
        .choices(INJECTION_ABIS)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--kind <kind>', 'the abort to inject')
        .choices(['data', 'instruction'])
        .makeOptionMandatory(),
    )
    .option('--iss <iss>', 'ISS [24:0] to carry (ext-abt-esr ABI with RAS only)', issValue)
    .option('--no-ras', 'a host without FEAT_RAS')
    .action(act<EventsOptions>(ctx, (opts) => events(opts, ctx.io)));
}
